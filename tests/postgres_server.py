"""Start a throw-away PostgreSQL server on 127.0.0.1 for the tests.

Uses the machine's PostgreSQL binaries (Debian's ``postgresql`` package). The
cluster lives in a temporary folder, listens only on 127.0.0.1 on a free port,
and requires a password, so tests can check that it never leaks.

``start_postgres_server()`` yields its URL; ``postgres_server()`` yields a
:class:`PostgresServer` that a test can ``stop()`` and ``start()`` again on
the same port and data (an outage, or a crash with ``stop("immediate")``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

USER = "ivory"
PASSWORD = "s3cret-pw"


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; CI runs as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextlib.contextmanager
def start_postgres_server(timeout: float = 60) -> Iterator[str]:
    """Yield ``postgresql://ivory:<password>@127.0.0.1:<port>/postgres``.

    The cluster lives in its own folder under the system's temp dir (pytest's
    temp dirs are private to root, and PostgreSQL runs as ``postgres``), which
    is removed at the end.
    """
    with postgres_server(timeout) as server:
        yield server.url


@contextlib.contextmanager
def postgres_server(timeout: float = 60, max_connections: int = 100) -> Iterator[PostgresServer]:
    """Yield a running :class:`PostgresServer` that a test may stop and start again.

    Its folder is removed at the end.
    """
    base = Path(tempfile.mkdtemp(prefix="ivory-hydra-pg-"))
    server = PostgresServer(base, timeout, max_connections)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


class PostgresServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1 that can be stopped and started again.

    ``start()`` and ``stop()`` keep the port and the data folder, as a restart
    of a real server does: clients see their connections drop, then the same
    URL answer again with the same data.
    """

    def __init__(self, base: Path, timeout: float = 60, max_connections: int = 100) -> None:
        self.base = base
        self.timeout = timeout
        self.max_connections = max_connections
        self.data = base / "data"
        self.port = _free_port()
        self.url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def _init(self) -> None:
        sockets = self.base / "sockets"
        sockets.mkdir(exist_ok=True)
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD)
        if os.geteuid() == 0:
            for path in (self.base, sockets, pwfile):
                shutil.chown(path, "postgres")
        subprocess.run(
            _as_postgres(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    USER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (initialising the cluster the first time); wait until it answers."""
        if self.running:
            return
        if not self.data.exists():
            self._init()
        self._log = open(self.base / "postgres.log", "a")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            _as_postgres(
                [
                    _bin("postgres"),
                    "-D",
                    str(self.data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.base / "sockets"),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"max_connections={self.max_connections}",
                    "-c",
                    "fsync=off",
                ]
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.timeout
        while True:
            ready = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log = (self.base / "postgres.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"PostgreSQL did not start: {log}")
            time.sleep(0.2)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once (a restart), ``immediate``
        is a crash (no checkpoint; the next start recovers)."""
        if self._proc is None:
            return
        sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        # Signal the postmaster itself: as root, self._proc is runuser, its parent.
        pid = self._postmaster_pid()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid if pid is not None else self._proc.pid, sig)
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=20)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        deadline = time.monotonic() + 10  # the next start needs the pid file gone
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def fresh_database(url: str) -> str:
    """Create an empty database on the server of ``url``; return its URL."""
    import uuid

    import psycopg

    name = f"ivory_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name

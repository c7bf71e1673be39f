"""Start a throw-away PostgreSQL server on 127.0.0.1 for the tests.

Uses the machine's PostgreSQL binaries (Debian's ``postgresql`` package). The
cluster lives in a temporary folder, listens only on 127.0.0.1 on a free port,
and requires a password, so tests can check that it never leaks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

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
    base = Path(tempfile.mkdtemp(prefix="ivory-hydra-pg-"))
    try:
        with _server(base, timeout) as url:
            yield url
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _server(base: Path, timeout: float) -> Iterator[str]:
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir(exist_ok=True)
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD)
    if os.geteuid() == 0:
        for path in (base, sockets, pwfile):
            shutil.chown(path, "postgres")
    subprocess.run(
        _as_postgres(
            [
                _bin("initdb"),
                "-D",
                str(data),
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
    port = _free_port()
    log = open(base / "postgres.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        _as_postgres(
            [
                _bin("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=100",
                "-c",
                "fsync=off",
            ]
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-t", "2"],
                capture_output=True,
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not start: {(base / 'postgres.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


def fresh_database(url: str) -> str:
    """Create an empty database on the server of ``url``; return its URL."""
    import uuid

    import psycopg

    name = f"ivory_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name

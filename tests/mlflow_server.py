"""Start a real ``mlflow server`` on 127.0.0.1 for tests.

Usage::

    from mlflow_server import start_mlflow_server   # tests/ on sys.path

    with start_mlflow_server(tmp_path) as url:      # "http://127.0.0.1:<port>"
        ...

    from postgres_server import start_postgres_server

    with start_postgres_server() as pg, start_mlflow_pg_server(tmp_path, pg) as server:
        server.url, server.backend_store_uri      # runs live in a fresh PostgreSQL database

The server stores runs in ``<tmp>/srv.db`` (SQLite), or in any database given
as ``backend_store_uri`` (``start_mlflow_pg_server`` makes an empty PostgreSQL
database for it), and serves artifacts itself (``--serve-artifacts``, the
default artifact root ``mlflow-artifacts:/``) from ``<tmp>/artifacts``, the way
a shared team server does, so clients upload artifacts over HTTP. It listens on
127.0.0.1 only and runs in its own process group; leaving the ``with`` block
terminates the whole group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MlflowServer",
    "MlflowServerProcess",
    "mlflow_command",
    "mlflow_server",
    "start_mlflow_pg_server",
    "start_mlflow_server",
]

HOST = "127.0.0.1"


def mlflow_command() -> list[str]:
    """The ``mlflow`` CLI of the running interpreter's environment."""
    exe = Path(sys.executable).parent / "mlflow"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("mlflow")
    if found:
        return [found]
    return [sys.executable, "-m", "mlflow"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0, *, kill: bool = False) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left (``kill``: SIGKILL at once)."""
    if proc.poll() is None and not kill:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Workers may outlive the leader; the group id is the leader's pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class MlflowServerProcess:
    """One ``mlflow server`` on a fixed 127.0.0.1 port that can be stopped and started again.

    ``stop(kill=True)`` SIGKILLs its process group (a crash); ``start()``
    brings it back on the same port with the same stores, so clients see the
    same URL go away and answer again.
    """

    def __init__(
        self,
        tmp_path: Path,
        *,
        port: int | None = None,
        timeout: float = 90.0,
        workers: int = 1,
        backend_store_uri: str | None = None,
    ) -> None:
        self.tmp_path = Path(tmp_path)
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.timeout = timeout
        self.workers = workers
        self.backend_store_uri = backend_store_uri or f"sqlite:///{self.tmp_path / 'srv.db'}"
        self.log_path = self.tmp_path / "mlflow-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        return [
            *mlflow_command(),
            "server",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            self.backend_store_uri,
            "--serve-artifacts",
            "--default-artifact-root",
            "mlflow-artifacts:/",
            "--artifacts-destination",
            str(self.tmp_path / "artifacts"),
        ]

    def start(self) -> None:
        """Start the server and wait (bounded by ``timeout``) until ``/health`` answers.

        Raises ``RuntimeError`` if it exits first (e.g. its port was taken),
        ``TimeoutError`` if it does not answer in time; either way nothing is
        left running.
        """
        if self.proc is not None and self.proc.poll() is None:
            return
        # MLflow 3's server also starts a job runner (seven huey consumer
        # processes, for GenAI jobs) by default: tracking needs none of it.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        env.pop("MLFLOW_TRACKING_URI", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._command(),
                cwd=self.tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, killed as a whole
            )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if _healthy(self.url):
                return
            time.sleep(0.25)
        exited = self.proc.poll() is not None
        self.stop()
        if exited:
            raise RuntimeError(f"mlflow server failed to start:\n{_tail(self.log_path)}")
        raise TimeoutError(
            f"mlflow server did not answer {self.url}/health "
            f"within {self.timeout:.0f} s:\n{_tail(self.log_path)}"
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server's whole process group: SIGTERM first, or at once SIGKILL."""
        if self.proc is None:
            return
        _stop(self.proc, grace=0.0 if kill else 10.0, kill=kill)
        self.proc = None


@contextlib.contextmanager
def mlflow_server(
    tmp_path: Path,
    *,
    timeout: float = 90.0,
    workers: int = 1,
    backend_store_uri: str | None = None,
) -> Iterator[MlflowServerProcess]:
    """A running :class:`MlflowServerProcess` on a free port, stopped at the end.

    A free port may be taken before the server binds it: then another is tried.
    """
    last_error: Exception | None = None
    for _attempt in range(3):
        server = MlflowServerProcess(
            tmp_path, timeout=timeout, workers=workers, backend_store_uri=backend_store_uri
        )
        try:
            server.start()
        except RuntimeError as error:
            last_error = error
            continue
        try:
            yield server
        finally:
            server.stop()
        return
    raise RuntimeError(str(last_error))


@contextlib.contextmanager
def start_mlflow_server(
    tmp_path: Path,
    *,
    timeout: float = 90.0,
    workers: int = 1,
    backend_store_uri: str | None = None,
) -> Iterator[str]:
    """Run ``mlflow server`` on a free 127.0.0.1 port; yield its URL.

    Runs go to ``backend_store_uri`` (default: ``<tmp_path>/srv.db``), artifacts
    to ``<tmp_path>/artifacts``. Waits (bounded by ``timeout`` seconds) until
    ``/health`` answers. The server's output goes to
    ``<tmp_path>/mlflow-server.log``, quoted in the error if it does not come up.
    """
    with mlflow_server(
        tmp_path, timeout=timeout, workers=workers, backend_store_uri=backend_store_uri
    ) as server:
        yield server.url


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``: its URL, where its runs and artifacts live."""

    url: str
    backend_store_uri: str
    artifacts: Path


@contextlib.contextmanager
def start_mlflow_pg_server(
    tmp_path: Path, postgres_url: str, *, timeout: float = 120.0, workers: int = 1
) -> Iterator[MlflowServer]:
    """Run ``mlflow server`` on a fresh database of the PostgreSQL server of ``postgres_url``.

    ``postgres_url`` is any database URL of that server (as
    ``postgres_server.start_postgres_server`` yields); an empty database is
    created for the server, which builds MLflow's tables in it at start-up.
    Artifacts go to ``<tmp_path>/artifacts``, served over HTTP.
    """
    from postgres_server import fresh_database

    database = fresh_database(postgres_url)
    with start_mlflow_server(
        tmp_path, timeout=timeout, workers=workers, backend_store_uri=database
    ) as url:
        yield MlflowServer(url, database, Path(tmp_path) / "artifacts")

"""Start a real gRPC storage proxy process on 127.0.0.1 for the tests (and the benchmark).

``start_proxy(url)`` runs ``python -m ivory_hydra.proxy URL --port 0`` and
yields a :class:`Proxy` (its ``grpc://`` URL, its process) once it serves;
``bare=True`` runs Optuna's own ``run_grpc_proxy_server`` instead, which serves
Optuna's storage but not ivory-hydra's records.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BARE = """
import sys, optuna
storage = optuna.storages.get_storage(sys.argv[1])
optuna.storages.run_grpc_proxy_server(storage, host="127.0.0.1", port=int(sys.argv[2]))
"""


@dataclass
class Proxy:
    url: str  # grpc://127.0.0.1:<port>
    proc: subprocess.Popen
    log: Path

    def calls(self) -> dict[str, int]:
        """The RPCs this proxy has answered, by method (ivory_hydra.proxy only)."""
        from ivory_hydra.stores.remote_records import RecordsLink

        return RecordsLink(self.url).call("Calls")

    def output(self) -> str:
        return self.log.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_serving(
    proc: subprocess.Popen, log: Path, port: int | None, bare: bool, timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the proxy exited ({proc.returncode}): {log.read_text()}")
        if not bare:
            found = re.search(r"at grpc://127\.0\.0\.1:(\d+)", log.read_text())
            if found:
                return int(found.group(1))
        else:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return port
        time.sleep(0.05)
    raise RuntimeError(f"the proxy did not serve within {timeout} s: {log.read_text()}")


@contextlib.contextmanager
def start_proxy(
    storage: str,
    *,
    bare: bool = False,
    threads: int | None = None,
    port: int | None = None,
    timeout: float = 120,
) -> Iterator[Proxy]:
    """Yield a :class:`Proxy` in front of ``storage`` (on ``port``, or a free one);
    stop it at the end."""
    fresh = port is None  # a port of its own: not a restart of a proxy at a port
    folder = Path(tempfile.mkdtemp(prefix="ivory-proxy-"))
    log = folder / "proxy.log"
    if bare and port is None:
        port = _free_port()
    if bare:
        command = [sys.executable, "-c", BARE, storage, str(port)]
    else:
        command = [sys.executable, "-m", "ivory_hydra.proxy", storage, "--port", str(port or 0)]
        command += ["--threads", str(threads)] if threads else []
    with open(log, "w") as out:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        port = _wait_serving(proc, log, port, bare, timeout)
        if fresh:
            forget_what_was_served_at_reused_ports()
        yield Proxy(f"grpc://127.0.0.1:{port}", proc, log)
    finally:
        stop(proc)


def forget_what_was_served_at_reused_ports() -> None:
    """Clear this process's per-URL caches of record links and boards: a port that an
    earlier test's proxy (of the other kind) had is a new server now."""
    from ivory_hydra.stores import beats, ledger, remote_records

    for cached in (remote_records.link_for, remote_records.serves_records):
        cached.cache_clear()
    for cached in (ledger.ledger_for, beats.beats_for):
        cached.cache_clear()


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """End a proxy process (SIGKILL if it lingers)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

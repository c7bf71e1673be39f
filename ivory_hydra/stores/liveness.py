"""Liveness records: who runs a trial or drives a sweep, and whether it still lives.

A live process *beats*: every ``interval`` seconds it rewrites a small record
(``at``, ``host``, ``pid``, and its process's start time) into the storage, on
a thread of its own. A process on this machine is judged by the process table,
exactly: it is dead as soon as it is gone (a reused pid has another start
time), and never while it lives, however late its beats (a busy machine delays
them). A process elsewhere is dead when its beats stopped for the grace period.
Optuna's own heartbeat runs only inside ``study.optimize()`` and only on RDB
storages; this works the same on SQLite, PostgreSQL and journal files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Defaults of ``heartbeat_interval`` and ``grace_period``, in seconds.
HEARTBEAT_INTERVAL = 10.0
GRACE_PERIOD = 60.0

HOST = socket.gethostname()


def start_time(pid: int) -> str | None:
    """When a process started, in clock ticks since boot (None if unknown or gone).

    >>> start_time(os.getpid()) == start_time(os.getpid())
    True
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


_process: list[Any] = [None, None]  # this process's pid and start time, once read


def beat_record(**extra: Any) -> dict[str, Any]:
    """A liveness record of this process, now.

    >>> sorted(beat_record())
    ['at', 'host', 'pid', 'started']
    """
    pid = os.getpid()
    if _process[0] != pid:  # read once per process (a forked child has its own)
        _process[:] = [pid, start_time(pid)]
    return {"at": time.time(), "host": HOST, "pid": pid, "started": _process[1], **extra}


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this machine.

    >>> process_alive(os.getpid())
    True
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is dead for our purposes.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def is_stale(record: Mapping[str, Any] | None, grace: float, now: float | None = None) -> bool:
    """Whether the process behind ``record`` is gone (None: no record, so stale).

    >>> is_stale(beat_record(), grace=60)
    False
    >>> is_stale({**beat_record(), "at": 0}, grace=60)  # late beats of a live local process
    False
    >>> is_stale({"at": 0, "host": "elsewhere", "pid": 1}, grace=60)
    True
    >>> is_stale({"at": time.time(), "host": HOST, "pid": 2**22 + 1}, grace=60)
    True
    """
    if not record:
        return True
    pid = int(record.get("pid", -1))
    if record.get("host") == HOST and record.get("started") is not None:
        return not process_alive(pid) or start_time(pid) != record["started"]
    now = time.time() if now is None else now
    if now - float(record.get("at", 0)) > grace:
        return True
    return record.get("host") == HOST and not process_alive(pid)


def describe(record: Mapping[str, Any] | None, now: float | None = None) -> str:
    """Where and since when a process beats, for messages.

    >>> describe({"at": 100.0, "host": "gpu1", "pid": 42, "since": "2026-11-29 10:00:00"}, 103.0)
    'pid 42 on gpu1, since 2026-11-29 10:00:00, last seen 3 s ago'
    """
    if not record:
        return "an unknown process"
    now = time.time() if now is None else now
    text = f"pid {record.get('pid')} on {record.get('host')}"
    if record.get("since"):
        text += f", since {record['since']}"
    return text + f", last seen {max(0.0, now - float(record.get('at', now))):.0f} s ago"


class Beater:
    """Calls ``beat()`` every ``interval`` seconds on a daemon thread until stopped.

    A beat that raises is logged once and the beats go on.
    """

    def __init__(
        self, interval: float, beat: Callable[[], object], *, name: str = "ivory-hydra-beat"
    ) -> None:
        self.interval = interval
        self._beat = beat
        self._stop = threading.Event()
        self._warned = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Beater:
        """Start beating; returns self."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._beat()
            except Exception as error:  # noqa: BLE001 - a missed beat is not fatal
                if not self._warned:
                    log.warning("heartbeat failed (will retry): %s", error)
                    self._warned = True

    def stop(self) -> None:
        """Stop beating and wait for the thread (unless called from it)."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

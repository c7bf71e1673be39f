"""Liveness records: who runs a trial or drives a sweep, and whether it still lives.

A live process *beats*: every ``interval`` seconds it rewrites a small record
(``at``, ``host``, ``pid``, and its process's start time) beside the storage
(:mod:`ivory_hydra.stores.beats`), on a thread of its own. A process on this
machine is judged by the process table (psutil, on every OS), exactly: it is
dead as soon as it is gone or a zombie (a reused pid has another start time),
and never while it lives, however late its beats (a busy machine delays
them). A process elsewhere is dead when its beats stopped for the grace period.
Optuna's own heartbeat runs only inside ``study.optimize()`` and only on RDB
storages; this works the same on SQLite, PostgreSQL and journal files.
"""

from __future__ import annotations

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


#: Two start times closer than this (seconds) are the same process's. Linux
#: gives them exactly; elsewhere the boot time they count from may move a little.
SAME_START = 1.0


def start_time(pid: int) -> float | None:
    """When a process started, in seconds after the machine booted (None if unknown or gone).

    Counted from boot, not a date, so that setting the clock does not change it.

    >>> start_time(os.getpid()) == start_time(os.getpid())
    True
    """
    import psutil

    try:
        return round(psutil.Process(pid).create_time() - psutil.boot_time(), 2)
    except (psutil.Error, OSError, ValueError):
        return None


def _seconds(started: Any) -> float | None:
    """A recorded start time in seconds after boot; before 0.3 it was clock ticks, as text.

    >>> _seconds(12.5), _seconds(str(25 * os.sysconf("SC_CLK_TCK"))), _seconds("x")
    (12.5, 25.0, None)
    """
    try:
        if isinstance(started, str):
            return int(started) / os.sysconf("SC_CLK_TCK")
        return float(started)
    except (TypeError, ValueError, OSError):
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
    """Whether a process with ``pid`` runs on this machine (a zombie does not).

    >>> process_alive(os.getpid()), process_alive(0), process_alive(-1)
    (True, False, False)
    """
    import psutil

    if pid <= 0:
        return False
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # e.g. AccessDenied: it exists
        return True


def is_stale(record: Mapping[str, Any] | None, grace: float, now: float | None = None) -> bool:
    """Whether the process behind ``record`` is gone (None: no record, so stale).

    >>> is_stale(beat_record(), grace=60)
    False
    >>> is_stale({**beat_record(), "at": 0}, grace=60)  # late beats of a live local process
    False
    >>> is_stale({**beat_record(), "started": start_time(os.getpid()) - 5}, grace=60)  # reused
    True
    >>> is_stale({"at": 0, "host": "elsewhere", "pid": 1}, grace=60)
    True
    >>> is_stale({"at": time.time(), "host": HOST, "pid": 2**22 + 1}, grace=60)
    True
    """
    if not record:
        return True
    pid = int(record.get("pid", -1))
    local = record.get("host") == HOST
    recorded = _seconds(record.get("started"))
    if local and recorded is not None:
        if not process_alive(pid):
            return True
        current = start_time(pid)
        if current is not None:  # else unknown here: judged by its beats
            return abs(current - recorded) > SAME_START
    now = time.time() if now is None else now
    if now - float(record.get("at", 0)) > grace:
        return True
    return local and not process_alive(pid)


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

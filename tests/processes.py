"""Reading the process table (psutil) in the fault and launcher tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import psutil

POLL = 0.1

#: psutil's states as the letters of ``ps`` (R running, S sleeping, Z zombie...).
_LETTERS = {
    psutil.STATUS_RUNNING: "R",
    psutil.STATUS_SLEEPING: "S",
    psutil.STATUS_DISK_SLEEP: "D",
    psutil.STATUS_STOPPED: "T",
    psutil.STATUS_TRACING_STOP: "t",
    psutil.STATUS_ZOMBIE: "Z",
    psutil.STATUS_DEAD: "X",
    psutil.STATUS_IDLE: "I",
}


def process_state(pid: int) -> str | None:
    """The state letter of a process (``R``, ``S``, ``Z``...), None if it is gone."""
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:
        return "?"
    return _LETTERS.get(status, "?")


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, is dead)."""
    return process_state(pid) not in (None, "Z", "X")


def cmdline(pid: int) -> str:
    """The command line of ``pid``, empty if it is gone."""
    try:
        return " ".join(psutil.Process(pid).cmdline()).strip()
    except psutil.Error:
        return ""


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    try:
        return [child.pid for child in psutil.Process(pid).children()]
    except psutil.NoSuchProcess:
        return []


def pids_mentioning(text: str) -> list[int]:
    """Live processes (but this one) whose command line contains ``text``."""
    return [
        proc.pid
        for proc in psutil.process_iter()
        if proc.pid != os.getpid() and text in cmdline(proc.pid) and is_alive(proc.pid)
    ]


def still_alive(pids: Iterable[int], timeout: float = 15.0) -> list[int]:
    """Wait (at most ``timeout`` s) for ``pids`` to end; return those still alive."""
    pids = set(pids)
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(pid for pid in pids if is_alive(pid))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(POLL)


def assert_processes_end(pids: Iterable[int], timeout: float = 15.0) -> None:
    """Fail unless every one of ``pids`` ends within ``timeout`` s."""
    left = still_alive(pids, timeout)
    assert not left, f"alive {timeout} s later: {[(pid, cmdline(pid)) for pid in left]}"

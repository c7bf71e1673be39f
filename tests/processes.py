"""Reading the process table (``/proc``) in the fault and launcher tests."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

POLL = 0.1


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_state(pid: int) -> str | None:
    """The state letter of a process (``R``, ``S``, ``Z``...), None if it is gone."""
    try:
        return _stat_fields(pid)[0]
    except (OSError, IndexError):
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, is dead)."""
    return process_state(pid) not in (None, "Z", "X")


def cmdline(pid: int) -> str:
    """The command line of ``pid``, empty if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def children_of(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    children = []
    for child in _pids():
        try:
            parent = int(_stat_fields(child)[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            children.append(child)
    return children


def pids_mentioning(text: str) -> list[int]:
    """Live processes (but this one) whose command line contains ``text``."""
    return [pid for pid in _pids() if pid != os.getpid() and text in cmdline(pid) and is_alive(pid)]


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

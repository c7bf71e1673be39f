"""No orphaned workers: a watcher ends what a SIGKILLed sweeper leaves behind.

A launcher's worker processes (loky's for joblib, submitit_local's jobs, a
local Ray instance) outlive a sweeper killed with SIGKILL, which runs no
cleanup. A busy worker notices on its own (:mod:`ivory_hydra.job.session`
fails its trial and exits), but an idle one would wait for work forever.

:func:`watch` starts a small watcher process beside the sweeper. While the
sweeper lives, the watcher notes its descendants (with their start times, so
that a reused pid is never hit); once the sweeper is gone, it gives running
jobs a few seconds to record their end, then sends SIGTERM and, later,
SIGKILL to those still alive. Linux only (it reads ``/proc``); elsewhere it
does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: The watcher's code: standard library only, so that it starts in milliseconds.
WATCHER = r"""
import os, signal, sys, time

sweeper, me = int(sys.argv[1]), os.getpid()


def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else fields[19]
    except OSError:
        return None


def children(pid):
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as text:
                found += [int(p) for p in text.read().split()]
    except OSError:
        pass
    return found


known = {}
while start_time(sweeper) is not None:
    todo = children(sweeper)
    while todo:
        pid = todo.pop()
        if pid != me and pid not in known:
            stamp = start_time(pid)
            if stamp is not None:
                known[pid] = stamp
                todo += children(pid)
    time.sleep(0.5)
time.sleep(float(sys.argv[2]))  # busy jobs record their end first
for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    alive = [p for p, stamp in known.items() if start_time(p) == stamp]
    for pid in alive:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if start_time(p) == known[p]]
"""


_watcher: list[subprocess.Popen[bytes]] = []


def watch(grace: float = 3.0) -> None:
    """Start the watcher of this process's descendants, once per process.

    The watcher is a process of its own session, so that signals sent to the
    sweeper's process group do not reach it; it exits after the sweeper.
    Nothing happens where ``/proc`` is missing.
    """
    if _watcher and _watcher[0].poll() is None:
        return
    if not Path("/proc/self/task").is_dir():
        return
    _watcher[:] = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", WATCHER, str(os.getpid()), str(grace)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]

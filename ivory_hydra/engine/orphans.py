"""No orphaned workers: a watcher ends what a SIGKILLed sweeper leaves behind.

A launcher's worker processes (loky's for joblib, submitit_local's jobs, a
local Ray instance) outlive a sweeper killed with SIGKILL, which runs no
cleanup. A busy worker notices on its own (:mod:`ivory_hydra.job.session`
fails its trial and exits), but an idle one would wait for work forever.

:func:`watch` starts a small watcher process beside the sweeper. While the
sweeper lives, the watcher notes its descendants (psutil's process table, on
every OS; a process is known with its start time, so that a reused pid is
never hit); once the sweeper is gone, it gives running jobs a few seconds to
record their end, then sends SIGTERM and, later, SIGKILL to those still alive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

#: The watcher's code: the standard library and psutil only, run with ``-S``
#: (no site-packages scan) so that it starts in about 0.15 s.
WATCHER = r"""
import os, signal, sys, time

sys.path.insert(0, sys.argv[3])
import psutil

me = os.getpid()


def alive(proc):
    # psutil's is_running() is False for a pid reused by another process.
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


try:
    sweeper = psutil.Process(int(sys.argv[1]))
except psutil.Error:
    sys.exit(0)
known = {}
pause, next_scan = 0.5, 0.0
while alive(sweeper):
    # Reading the whole process table costs: twice a second while new
    # descendants appear, backing off to every 2 s while none do.
    if time.monotonic() >= next_scan:
        before = len(known)
        try:
            for child in sweeper.children(recursive=True):
                if child.pid != me and child.pid not in known and alive(child):
                    known[child.pid] = child
        except psutil.Error:
            pass
        pause = 0.5 if len(known) > before else min(2.0, pause * 2)
        next_scan = time.monotonic() + pause
    time.sleep(0.25)
time.sleep(float(sys.argv[2]))  # busy jobs record their end first
for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    left = [proc for proc in known.values() if alive(proc)]
    for proc in left:
        try:
            proc.send_signal(sig)  # refused by psutil if the pid was reused meanwhile
        except psutil.Error:
            pass
    deadline = time.monotonic() + wait
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = [proc for proc in left if alive(proc)]
"""


_watcher: list[subprocess.Popen[bytes]] = []


def watch(grace: float = 3.0) -> None:
    """Start the watcher of this process's descendants, once per process.

    The watcher is a process of its own session, so that signals sent to the
    sweeper's process group do not reach it; it exits after the sweeper.
    Nothing happens where there is no SIGKILL (Windows).
    """
    if _watcher and _watcher[0].poll() is None:
        return
    if not hasattr(signal, "SIGKILL"):
        return
    import psutil

    site = str(Path(psutil.__file__).parent.parent)
    _watcher[:] = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", WATCHER, str(os.getpid()), str(grace), site],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]

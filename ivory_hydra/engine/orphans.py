"""No orphaned workers: a watcher ends what a SIGKILLed sweeper leaves behind.

A launcher's worker processes (loky's for joblib, submitit_local's jobs, a
local Ray instance) outlive a sweeper killed with SIGKILL, which runs no
cleanup. A busy worker notices on its own (:mod:`ivory_hydra.job.session`
fails its trial and exits), but an idle one would wait for work forever.

:func:`watch` starts a small watcher process beside the sweeper. While the
sweeper lives, the watcher notes its descendants (psutil's process table, on
every OS; a process is known with its start time, so that a reused pid is
never hit). A descendant started just before the sweeper died may not have
been seen: every descendant also inherits a token in its environment
(:data:`TOKEN`), by which the watcher finds the rest once the sweeper is gone.
It then gives running jobs a few seconds to record their end, and sends
SIGTERM and, later, SIGKILL to those still alive.
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
# the sweeper's descendants that the scans missed carry its token
token, variable = sys.argv[4], sys.argv[5]
for proc in psutil.process_iter():
    try:
        if proc.pid != me and proc.pid not in known and proc.environ().get(variable) == token:
            known[proc.pid] = proc
    except psutil.Error:
        pass
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


#: The environment variable every descendant of a watched sweeper inherits.
TOKEN = "IVORY_HYDRA_SWEEPER"

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
    me = psutil.Process()
    token = f"{me.pid}:{me.create_time()}"
    os.environ[TOKEN] = token  # inherited by the workers the launcher starts from now on
    _watcher[:] = [
        subprocess.Popen(
            [sys.executable, "-S", "-c", WATCHER, str(me.pid), str(grace), site, token, TOKEN],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    ]

"""Liveness judged by the process table (psutil): real processes, dead, zombie, reused, alive.

And the watcher that ends the workers a SIGKILLed sweeper leaves behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from processes import assert_processes_end, is_alive

import ivory_hydra
from ivory_hydra.stores.liveness import HOST, is_stale, process_alive, start_time

PACKAGE = Path(ivory_hydra.__file__).parent


def test_no_module_reads_proc():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    found = [str(p.relative_to(PACKAGE)) for p in sources if "/proc" in p.read_text()]
    assert not found, f"modules that read /proc (use psutil): {found}"


def record_of(pid: int, **changes) -> dict:
    """The liveness record a process with ``pid`` would write, now."""
    return {"at": time.time(), "host": HOST, "pid": pid, "started": start_time(pid), **changes}


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_a_live_local_process_with_late_beats_is_alive():
    proc = sleeper()
    try:
        record = record_of(proc.pid, at=time.time() - 3600)  # an hour without a beat
        assert record["started"] is not None
        assert process_alive(proc.pid) and not is_stale(record, grace=60)
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_process_is_stale_at_once():
    proc = sleeper()
    record = record_of(proc.pid)  # beats just now
    proc.kill()
    proc.wait()  # reaped: the pid is gone
    assert not process_alive(proc.pid)
    assert is_stale(record, grace=3600)


def test_a_zombie_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    record = record_of(proc.pid)
    deadline = time.monotonic() + 30
    while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
        assert time.monotonic() < deadline, "the child did not become a zombie"
        time.sleep(0.05)
    try:
        assert psutil.pid_exists(proc.pid)  # still in the process table...
        assert not process_alive(proc.pid)  # ...but dead
        assert is_stale({**record, "started": None}, grace=3600)
    finally:
        proc.wait()


def test_a_reused_pid_is_another_process():
    proc = sleeper()
    try:
        started = start_time(proc.pid)
        # the record of an earlier process that had this pid: it started 10 s before
        assert is_stale(record_of(proc.pid, started=started - 10), grace=3600)
        assert not is_stale(record_of(proc.pid, started=started), grace=3600)
        # a record written before 0.3 held the start in clock ticks, as text
        ticks = str(round(started * os.sysconf("SC_CLK_TCK")))
        assert not is_stale(record_of(proc.pid, started=ticks), grace=3600)
    finally:
        proc.kill()
        proc.wait()


def test_a_process_elsewhere_is_judged_by_its_beats():
    assert not is_stale({"at": time.time() - 5, "host": "gpu9", "pid": 1}, grace=60)
    assert is_stale({"at": time.time() - 61, "host": "gpu9", "pid": 1}, grace=60)


SWEEPER = """
import subprocess, sys, time
from ivory_hydra.engine.orphans import watch
watch(grace=0.5)
worker = subprocess.Popen([sys.executable, "-c", '''
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(grandchild.pid, flush=True)
time.sleep(120)
'''], stdout=subprocess.PIPE, text=True)
print(worker.pid, worker.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


def test_the_watcher_ends_what_a_killed_sweeper_leaves():
    sweeper = subprocess.Popen(
        [sys.executable, "-c", SWEEPER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        worker, grandchild = (int(pid) for pid in sweeper.stdout.readline().split())
        time.sleep(1.5)  # the watcher has seen them (it looks twice a second)
        assert is_alive(worker) and is_alive(grandchild)
        os.kill(sweeper.pid, signal.SIGKILL)
        sweeper.wait()
        assert_processes_end([worker, grandchild], timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):  # what a failed test left
            os.killpg(sweeper.pid, signal.SIGKILL)

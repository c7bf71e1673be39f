"""Another process that locks an SQLite file: an exclusive transaction, held on request.

Usage::

    from sqlite_lock import sqlite_locked   # tests/ on sys.path

    with sqlite_locked(db) as lock:          # locked as the block starts
        ...
    with sqlite_locked(db, when=(record, '"end"')) as lock:
        ...                                  # locked once `record` holds that text
        lock.wait_locked()

The lock is ``BEGIN EXCLUSIVE`` through Python's sqlite3 in a subprocess: no
other connection reads or writes the file until the block ends (or ``hold``
seconds passed), when the transaction is rolled back and the process exits.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCKER = """
import pathlib, sqlite3, sys, time
db, release, hold, trigger, text = sys.argv[1:6]
while trigger and text not in (pathlib.Path(trigger).read_text()
                               if pathlib.Path(trigger).exists() else ""):
    time.sleep(0.02)
con = sqlite3.connect(db, timeout=60, isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
until = time.monotonic() + float(hold)
while not pathlib.Path(release).exists() and time.monotonic() < until:
    time.sleep(0.02)
con.execute("ROLLBACK")
print("released", flush=True)
"""


@dataclass
class Lock:
    """The locking process."""

    proc: subprocess.Popen[str]
    release: Path

    def wait_locked(self, timeout: float = 60.0) -> None:
        """Wait until the lock is held."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.proc.stdout.readline()
        assert line.strip() == "locked" and time.monotonic() < deadline, line

    def end(self) -> None:
        """Release the lock and wait for the process to exit."""
        self.release.touch()
        self.proc.wait(timeout=60)


@contextlib.contextmanager
def sqlite_locked(
    db: Path, *, when: tuple[Path, str] | None = None, hold: float = 120.0
) -> Iterator[Lock]:
    """Lock ``db`` from another process (once ``when``'s file holds its text) until the
    block ends, or for ``hold`` seconds at most."""
    release = db.with_name(db.name + ".release")
    release.unlink(missing_ok=True)
    trigger, text = (str(when[0]), when[1]) if when else ("", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), str(release), str(hold), trigger, text],
        stdout=subprocess.PIPE,
        text=True,
    )
    lock = Lock(proc, release)
    try:
        if when is None:
            lock.wait_locked()
        yield lock
    finally:
        lock.end()

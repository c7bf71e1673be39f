"""One process runs the sweep: the lease that keeps a second one out (SQLite).

The lease is a ledger record that its holder rewrites every heartbeat. A
second sweeper of the same sweep finds a live holder and is refused at once,
with where and since when that holder runs; a holder that stopped beating for
the grace period (or whose process is gone from this machine) is replaced by
compare-and-set, so of two processes starting together exactly one wins.
SQLite gives no safe compare-and-set across processes for trials, so a sweep on
an SQLite storage is run by one process at a time.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

from ivory_hydra.engine.coordination import Coordination
from ivory_hydra.errors import SweepBusyError
from ivory_hydra.stores.format import Keys
from ivory_hydra.stores.ledger import Ledger
from ivory_hydra.stores.liveness import Beater, beat_record, describe, is_stale

log = logging.getLogger(__name__)


class Lease:
    """The lease of this process on one sweep."""

    def __init__(self, ledger: Ledger, study_name: str, *, interval: float, grace: float) -> None:
        self.ledger = ledger
        self.study_name = study_name
        self.key = Keys.lease(study_name)
        self.interval = interval
        self.grace = grace
        self.record: dict | None = None
        self._beater: Beater | None = None

    def acquire(self) -> dict | None:
        """Take the lease; return the dead holder it replaced, if any.

        Raises :class:`SweepBusyError` naming the live holder.
        """
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        for _ in range(10):
            current = self.ledger.get(self.key)
            if current is not None and not is_stale(current, self.grace):
                raise SweepBusyError(
                    f"this sweep (study {self.study_name!r}) is already running: "
                    f"{describe(current)}. Wait for it to end or stop it; a sweeper that "
                    f"died is taken over once its heartbeat has stopped for {self.grace:g} s. "
                    "An SQLite storage serves one sweeper at a time: to run several workers "
                    "on one sweep, use a PostgreSQL storage or a journal file."
                )
            mine = beat_record(since=since)
            if self.ledger.compare_and_set(self.key, current, mine):
                self.record = mine
                self._beater = Beater(self.interval, self._renew, name="ivory-hydra-lease").start()
                if current is not None:
                    log.warning(
                        "Taking over this sweep from a sweeper that stopped: %s", describe(current)
                    )
                return current
        raise SweepBusyError(
            f"this sweep (study {self.study_name!r}) is being started by another process"
        )

    def _renew(self) -> None:
        if self.record is None:
            return
        renewed = {**self.record, **beat_record(since=self.record.get("since"))}
        if self.ledger.compare_and_set(self.key, self.record, renewed):
            self.record = renewed
        else:
            log.error(
                "Lost the lease on study %r: another sweeper took it over; "
                "its jobs and this one's may overlap",
                self.study_name,
            )
            self.record = None

    def release(self) -> None:
        """Give the lease up (the sweep ended or stopped)."""
        if self._beater is not None:
            self._beater.stop()
        if self.record is not None:
            self.ledger.compare_and_set(self.key, self.record, None)
            self.record = None


class Solo(Coordination):
    """This process runs the sweep alone; with a lease, no other may while it lives.

    The task API runs without one: each task is a study of its own.
    """

    def __init__(self, lease: Lease | None = None) -> None:
        self.lease = lease
        self._cursor: dict[int, int] = {}
        self._invocation = uuid.uuid4().hex[:12]

    @property
    def invocation(self) -> str:
        """A name of this process's run of the sweep, its own."""
        return self._invocation

    def owner(self) -> dict[str, Any]:
        from ivory_hydra.stores.liveness import HOST

        return {"host": HOST, "pid": os.getpid()}

    def join(self) -> None:
        if self.lease is not None:
            self.lease.acquire()

    def take(self, step: int, total: int, count: int) -> list[int] | None:
        start = self._cursor.get(step, 0)
        if start >= total:
            return None
        stop = min(start + count, total)
        self._cursor[step] = stop
        return list(range(start, stop))

    def leave(self, finished: bool) -> bool:
        if self.lease is not None:
            self.lease.release()
        return True

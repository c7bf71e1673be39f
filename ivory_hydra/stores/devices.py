"""The device pool of a host, kept in the ledger: which job holds which device.

Each device of a host is one ledger key, ``devices/<host>/<id>``
(:meth:`~ivory_hydra.stores.format.Keys.device`), whose value is the liveness
record of the job that holds it (its run, trial, host, pid and the process's
start time), and nothing while it is free. Every process that runs a job of
any sweep on this storage and host (sweepers, workers, launcher workers) sees
the same records, and changes them only by compare-and-set:

* a job takes each of its devices by setting it from free (or from a dead
  holder's record) to its own record; when one of them is gone meanwhile, it
  gives back what it took and tries again later;
* it gives them back by setting its own record back to nothing.

A holder is dead when its process is gone from this host (pid and start time,
read from the process table as for a trial's process,
:func:`~ivory_hydra.stores.liveness.is_stale`), or when it is a holding of
this very process that no running job of it knows (a job that ended without
giving it back). Its device is then taken over with compare-and-set, so that
of two jobs that find it dead at once one gets it. Only the
:class:`~ivory_hydra.stores.ledger.Ledger` interface is used.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ivory_hydra.core.devices import choose
from ivory_hydra.stores.format import Keys
from ivory_hydra.stores.ledger import Ledger
from ivory_hydra.stores.liveness import HOST, beat_record, is_stale

log = logging.getLogger(__name__)

#: The holdings of the jobs running in this process (their records' tokens).
_HOLDING: set[str] = set()


class DevicePool:
    """The devices of one host, held by jobs, in a storage's ledger."""

    def __init__(self, ledger: Ledger, host: str = HOST) -> None:
        self.ledger = ledger
        self.host = host

    def holder(self, **what: Any) -> dict[str, Any]:
        """A new holder record of this process (``what``: the run and trial it is for)."""
        return beat_record(token=uuid.uuid4().hex, **what)

    def holders(self) -> dict[int, dict[str, Any]]:
        """Every held device of the host, with its holder's record."""
        prefix = Keys.devices(self.host)
        found = {}
        for key, record in self.ledger.items(prefix):
            device = key[len(prefix) :]
            if device.isdigit() and isinstance(record, Mapping):
                found[int(device)] = dict(record)
        return found

    def take(
        self,
        pool: Sequence[int],
        count: int,
        holder: Mapping[str, Any],
        taken: list[int],
        *,
        last: Sequence[int] = (),
        pinned: bool = False,
    ) -> bool:
        """Try once to take ``count`` devices of ``pool`` for ``holder``; True if taken.

        The devices go into ``taken`` as each is taken, so that a caller that
        is interrupted still knows what to give back. On False, ``taken`` is
        empty again. ``last`` and ``pinned`` are as in
        :func:`~ivory_hydra.core.devices.choose`.
        """
        holders = self.holders()
        free = [d for d in pool if d not in holders or self.dead(holders[d])]
        picked = choose(pool, free, count, last, pinned)
        if picked is None:
            return False
        _HOLDING.add(holder["token"])
        for device in picked:
            before = holders.get(device)
            if not self.ledger.compare_and_set(Keys.device(self.host, device), before, holder):
                self.release(taken, holder)
                return False
            taken.append(device)
            if before is not None:
                log.warning(
                    "device %d of %s was held by %s, which is gone: taken over by %s",
                    device,
                    self.host,
                    _who(before),
                    holder.get("run") or "this job",
                )
        return True

    def release(self, taken: list[int], holder: Mapping[str, Any]) -> None:
        """Give back the devices in ``taken`` (emptied) that ``holder`` holds."""
        try:
            while taken:
                device = taken[-1]
                if not self.ledger.compare_and_set(Keys.device(self.host, device), holder, None):
                    log.debug("device %d was no longer held by %s", device, _who(holder))
                taken.pop()
        finally:  # a record left by a failed write is this process's leftover: taken over
            _HOLDING.discard(holder.get("token", ""))

    def dead(self, record: Mapping[str, Any]) -> bool:
        """Whether the holder behind ``record`` is gone (its device may be taken over)."""
        mine = record.get("host") == HOST and record.get("pid") == os.getpid()
        if mine and record.get("started") == beat_record()["started"]:
            return record.get("token") not in _HOLDING
        return is_stale(record, grace=math.inf)  # on this host: by the process table

    def describe_holders(self, devices: Sequence[int]) -> str:
        """Who holds ``devices`` now, for a job's message that it waits."""
        holders = self.holders()
        held = [f"{d} by {_who(holders[d])}" for d in devices if d in holders]
        return "; ".join(held) or "none (being taken)"


def _who(record: Mapping[str, Any]) -> str:
    """A holder for messages.

    >>> _who({"run": "run#3", "pid": 42, "host": "gpu1"})
    'run#3 (pid 42 on gpu1)'
    """
    return f"{record.get('run') or 'a job'} (pid {record.get('pid')} on {record.get('host')})"

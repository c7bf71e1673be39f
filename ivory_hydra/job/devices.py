"""A job's devices, inside the job's own process: waited for, held, given back.

:func:`held` runs around the task function under every launcher. It takes the
job's devices from its host's pool in the storage
(:class:`~ivory_hydra.stores.devices.DevicePool`), waiting while none are free
(it never runs the job without them), sets ``CUDA_VISIBLE_DEVICES`` to them
for the job, and gives them back when the job ends, however it ends; a killed
job's devices are freed when its process is found gone.

CUDA reads ``CUDA_VISIBLE_DEVICES`` once per process. A process that runs
several jobs (the basic launcher's, a reused loky worker) therefore prefers
the devices it held last, and once CUDA is initialized in it (torch), its
jobs wait for exactly those devices: handed others, the job would still run
on the old ones, beside another job.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ivory_hydra import signals
from ivory_hydra.core.devices import CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES, cuda_string
from ivory_hydra.stores import trials
from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.format import Tag, TrialAttr

if TYPE_CHECKING:
    from ivory_hydra.job.session import JobSession
    from ivory_hydra.job.ticket import Ticket

log = logging.getLogger(__name__)

#: Seconds between a waiting job's looks at the pool: from the first to the last.
FIRST_POLL = 0.05
LAST_POLL = 1.0
#: Seconds after which a job that still waits says so again.
LONG_WAIT = 300.0

_last: list[int] = []  # the devices this process's last job held
_said: set[str] = set()  # what this process said once


def cuda_initialized() -> bool:
    """Whether CUDA was initialized in this process (by torch; other frameworks unseen).

    >>> cuda_initialized()  # no torch imported here
    False
    """
    torch = sys.modules.get("torch")
    try:
        return bool(torch is not None and torch.cuda.is_initialized())
    except Exception:  # noqa: BLE001 - a partial or odd torch: not initialized
        return False


def _once(key: str, level: int, message: str) -> None:
    if key not in _said:
        _said.add(key)
        log.log(level, message)


def _pinned(ticket: Ticket) -> bool:
    """Whether this process's jobs must keep the devices CUDA already saw in it."""
    if not cuda_initialized():
        return False
    if not _last:
        _once(
            "early",
            logging.WARNING,
            "CUDA was initialized in this process before its job was given devices: "
            "its jobs use the devices CUDA saw then, whatever CUDA_VISIBLE_DEVICES says. "
            "Import torch inside the task function.",
        )
        return False
    if len(_last) != ticket.devices_per_job or not set(_last) <= set(ticket.devices):
        _once(
            "switch",
            logging.WARNING,
            f"CUDA was initialized in this process on devices {cuda_string(_last)}, which "
            f"this sweep's jobs cannot keep: its jobs still run there, whatever "
            f"CUDA_VISIBLE_DEVICES says",
        )
        return False
    _once(
        "pinned",
        logging.INFO,
        f"CUDA was initialized in this process (pid {os.getpid()}) on devices "
        f"{cuda_string(_last)}: its next jobs wait for these devices, since CUDA reads "
        f"CUDA_VISIBLE_DEVICES once per process",
    )
    return True


def _wait(
    pool: DevicePool, ticket: Ticket, holder: dict[str, Any], taken: list[int], run_name: str
) -> None:
    """Take the job's devices into ``taken``, waiting (polling the storage) while too few
    are free. Stop signals end the wait; a retried storage outage is waited out."""
    pinned = _pinned(ticket)
    delay = FIRST_POLL
    since = time.monotonic()
    said = 0.0  # how long it had waited when it last said so
    while True:
        signals.check()
        with signals.shielded():  # a stop signal lands between attempts, not inside one
            if pool.take(
                ticket.devices, ticket.devices_per_job, holder, taken, last=_last, pinned=pinned
            ):
                return
        waited = time.monotonic() - since
        # said once per process (its jobs wait whenever jobs outnumber devices), and
        # again by a job that waits long
        if "wait" not in _said or waited - said > LONG_WAIT:
            _said.add("wait")
            said = waited
            log.info(
                "[%s] waits for %s%s (held: %s)",
                run_name,
                "its process's devices" if pinned else "a free device",
                f" since {waited:.0f} s" if waited > LONG_WAIT else "",
                pool.describe_holders(_last if pinned else ticket.devices),
            )
        time.sleep(delay * random.uniform(0.5, 1.0))
        delay = min(LAST_POLL, delay * 1.5)


@contextlib.contextmanager
def held(ticket: Ticket, run_name: str, trial_id: int | None) -> Iterator[tuple[int, ...]]:
    """Hold the job's devices, visible to it as ``CUDA_VISIBLE_DEVICES``, while the
    block runs; yield them (nothing when the sweep assigns no devices)."""
    if not ticket.devices:
        yield ()
        return
    from ivory_hydra.stores.ledger import ledger_for

    pool = DevicePool(ledger_for(ticket.storage_url))
    holder = pool.holder(run=run_name, trial=trial_id)
    taken: list[int] = []
    names = (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER)
    before = {name: os.environ.get(name) for name in names}
    try:
        _wait(pool, ticket, holder, taken, run_name)
        devices = tuple(taken)
        _last[:] = devices
        os.environ[CUDA_VISIBLE_DEVICES] = cuda_string(devices)
        os.environ.setdefault(CUDA_DEVICE_ORDER, "PCI_BUS_ID")  # ids as nvidia-smi's
        yield devices
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        with signals.shielded():
            pool.release(taken, holder)


def recorded(
    session: JobSession | None, devices: tuple[int, ...], tags: dict[str, str]
) -> dict[str, Any]:
    """Record the job's devices on its trial now (a repeat's go into its own record when
    it ends), add their MLflow tag to ``tags``; return the ``attrs`` its end records."""
    if not devices:
        return {}
    attrs = {TrialAttr.DEVICES: list(devices)}
    tags[Tag.DEVICES] = cuda_string(devices)
    if session is not None and session.assignment.repeat is None:
        trials.set_attrs(session.storage, session.assignment.trial_id, attrs)
    return {"attrs": attrs}

"""The lease on a sweep: refused while its holder lives, taken over when it died."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ivory_hydra.engine.solo import Lease
from ivory_hydra.errors import SweepBusyError
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.liveness import HOST
from ivory_hydra.stores.optuna_storage import storage_url


@pytest.fixture
def ledger(tmp_path):
    return ledger_for(storage_url(None, tmp_path))


def test_refused_while_held_then_free(ledger):
    first = Lease(ledger, "s", interval=0.2, grace=5)
    assert first.acquire() is None
    with pytest.raises(SweepBusyError) as info:
        Lease(ledger, "s", interval=0.2, grace=5).acquire()
    assert f"on {HOST}" in str(info.value) and "since" in str(info.value)
    time.sleep(0.5)
    assert ledger.get("lease/s")["at"] > first.record["at"] - 1  # it beats
    first.release()
    assert ledger.get("lease/s") is None
    second = Lease(ledger, "s", interval=0.2, grace=5)
    second.acquire()
    second.release()


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(ledger):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    ledger.compare_and_set(
        "lease/s", None, {"at": time.time(), "host": HOST, "pid": int(dead.stdout)}
    )
    lease = Lease(ledger, "s", interval=0.2, grace=60)
    previous = lease.acquire()
    assert previous["pid"] == int(dead.stdout)
    lease.release()


def test_a_silent_holder_elsewhere_is_taken_over_after_the_grace_period(ledger):
    ledger.compare_and_set("lease/s", None, {"at": time.time() - 10, "host": "other", "pid": 1})
    with pytest.raises(SweepBusyError):
        Lease(ledger, "s", interval=1, grace=30).acquire()
    lease = Lease(ledger, "s", interval=1, grace=5)
    assert lease.acquire()["host"] == "other"
    lease.release()

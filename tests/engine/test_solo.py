"""The lease on a sweep: refused while its holder lives, renewed while held, taken over after."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from ivory_hydra.engine.solo import Lease
from ivory_hydra.errors import SweepBusyError
from ivory_hydra.stores.format import Keys
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.liveness import HOST
from ivory_hydra.stores.optuna_storage import storage_url

KEY = Keys.lease("s")
INTERVAL = 0.1


@pytest.fixture
def ledger(tmp_path):
    return ledger_for(storage_url(None, tmp_path))


def lease_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ivory-hydra-lease" and t.is_alive()]


def wait_for_beat_after(ledger, at: float, timeout: float = 10) -> dict:
    """The stored lease once its ``at`` is past ``at`` (bounded: fails if it never moves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = ledger.get(KEY)
        assert record is not None, "the lease record is gone while held"
        if record["at"] > at:
            return record
        time.sleep(INTERVAL / 2)
    pytest.fail(f"the lease record was not renewed within {timeout} s: {ledger.get(KEY)}")


def test_refused_while_held_then_free(ledger):
    first = Lease(ledger, "s", interval=0.2, grace=5)
    assert first.acquire() is None
    with pytest.raises(SweepBusyError) as info:
        Lease(ledger, "s", interval=0.2, grace=5).acquire()
    assert f"on {HOST}" in str(info.value) and "since" in str(info.value)
    first.release()
    assert ledger.get(KEY) is None
    second = Lease(ledger, "s", interval=0.2, grace=5)
    assert second.acquire() is None
    second.release()


def test_the_holder_renews_its_record_until_it_releases(ledger):
    others = set(lease_threads())  # other tests' leases in this process, if any
    lease = Lease(ledger, "s", interval=INTERVAL, grace=5)
    lease.acquire()
    assert len(set(lease_threads()) - others) == 1
    stored = ledger.get(KEY)
    assert stored == lease.record and stored["host"] == HOST
    # several beats, each moving the stored record forward in time
    beats = [stored]
    for _ in range(3):
        beats.append(wait_for_beat_after(ledger, beats[-1]["at"]))
    assert beats[-1]["at"] - beats[0]["at"] >= 2 * INTERVAL
    assert {(b["since"], b["pid"], b["host"]) for b in beats} == {
        (stored["since"], stored["pid"], stored["host"])
    }, "a renewal changed who holds the lease or since when"
    lease.release()
    assert ledger.get(KEY) is None
    assert not set(lease_threads()) - others, "the lease's heartbeat thread outlived its release"
    time.sleep(5 * INTERVAL)
    assert ledger.get(KEY) is None, "the released lease was written again"


def test_a_holder_that_lost_its_lease_stops_renewing_it(ledger):
    others = set(lease_threads())
    lease = Lease(ledger, "s", interval=INTERVAL, grace=5)
    lease.acquire()
    wait_for_beat_after(ledger, ledger.get(KEY)["at"])
    other = {"at": time.time() + 1000, "host": "other", "pid": 1, "since": "later"}
    # another sweeper takes it over (the holder may renew in between: try again)
    assert any(ledger.compare_and_set(KEY, ledger.get(KEY), other) for _ in range(50))
    time.sleep(5 * INTERVAL)
    assert ledger.get(KEY) == other, "the old holder overwrote the lease another took over"
    assert lease.record is None
    lease.release()  # gives up nothing that is not its own
    assert ledger.get(KEY) == other
    assert not set(lease_threads()) - others


def test_a_dead_holder_on_this_machine_is_taken_over_at_once(ledger):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    ledger.compare_and_set(KEY, None, {"at": time.time(), "host": HOST, "pid": int(dead.stdout)})
    lease = Lease(ledger, "s", interval=0.2, grace=60)
    previous = lease.acquire()
    assert previous["pid"] == int(dead.stdout)
    assert ledger.get(KEY) == lease.record
    lease.release()


def test_a_silent_holder_elsewhere_is_taken_over_after_the_grace_period(ledger):
    ledger.compare_and_set(KEY, None, {"at": time.time() - 10, "host": "other", "pid": 1})
    with pytest.raises(SweepBusyError):
        Lease(ledger, "s", interval=1, grace=30).acquire()
    lease = Lease(ledger, "s", interval=1, grace=5)
    assert lease.acquire()["host"] == "other"
    assert ledger.get(KEY) == lease.record
    lease.release()

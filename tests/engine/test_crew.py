"""Workers of one sweep meet in the ledger: one generation, shared ranges, one decision.

Real ledgers (an SQLite file and a journal file); the concurrent joins run on
threads, each with its own ``Crew`` as a separate process would have.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from ivory_hydra.engine.crew import Crew
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.liveness import beat_record
from ivory_hydra.stores.optuna_storage import storage_url


@pytest.fixture(params=["sqlite", "journal"])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        return ledger_for(storage_url(None, tmp_path))
    return ledger_for(storage_url(str(tmp_path / "sweep.journal")))


def crew(ledger) -> Crew:
    return Crew(ledger, "study", interval=0.2, grace=5)


def dead_record() -> dict:
    """The liveness record of a process of this machine that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return {**beat_record(), "pid": child.pid, "started": "0"}


def test_a_worker_that_took_the_head_but_has_not_recorded_it_is_joined(ledger):
    first = crew(ledger)
    assert first.join() == 1 and first.started_generation
    # the moment between taking the head and recording the generation
    record = ledger.get(first.key)
    assert ledger.compare_and_set(first.key, record, {**record, "generation": None})
    second = crew(ledger)
    assert second.join() == 1
    assert not second.started_generation
    second.leave(), first.leave()


def test_workers_starting_together_share_one_generation(ledger):
    crews = [crew(ledger) for _ in range(6)]
    barrier = threading.Barrier(len(crews))
    generations: list[int] = []

    def join(member: Crew) -> None:
        barrier.wait()
        generations.append(member.join())

    threads = [threading.Thread(target=join, args=(member,)) for member in crews]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert generations == [1] * len(crews)
    assert sum(member.started_generation for member in crews) == 1
    taken = [member.take(0, 10, 3) for member in crews]
    assert sorted(i for r in taken if r for i in r) == list(range(10))  # each slot once
    assert [member.leave() for member in crews].count(True) == 1  # exactly one is last


def test_a_sweep_started_again_after_all_workers_left_is_a_new_generation(ledger):
    first = crew(ledger)
    assert first.join() == 1
    assert first.take(0, 4, 4) == range(4)
    assert first.leave() is True
    again = crew(ledger)
    assert again.join() == 2 and again.started_generation
    assert again.take(0, 4, 4) == range(4)  # a resumed sweep's cursors start again
    again.leave()


def test_a_dead_starter_does_not_keep_its_generation(ledger):
    ledger.compare_and_set("crew/study", None, {"number": 1, "starter": "crew/study/gone"})
    ledger.compare_and_set("crew/study/gone", None, {**dead_record(), "generation": 1})
    worker = crew(ledger)
    assert worker.join() == 2


def test_a_survivor_inherits_the_ranges_of_a_dead_worker(ledger):
    survivor = crew(ledger)
    survivor.join()
    dead = {**dead_record(), "generation": 1, "claims": [[0, 4, 8]]}
    ledger.compare_and_set("crew/study/dead", None, dead)
    ledger.add("active/study/1", 1)
    assert survivor.inherit() == 1
    assert ledger.get("crew/study/dead") is None
    assert survivor.take(0, 10, 2) == range(4, 8)  # the dead worker's range first
    assert survivor.take(0, 10, 2) == range(0, 2)
    assert survivor.leave() is True


def test_the_first_chain_decision_stands(ledger):
    one, two = crew(ledger), crew(ledger)
    one.join(), two.join()
    assert one.decide("lr", {"value": 0.1}) == {"value": 0.1}
    assert two.decide("lr", {"value": 1.0}) == {"value": 0.1}
    assert two.decision("lr") == {"value": 0.1}
    one.leave(), two.leave()


def test_a_worker_stopped_with_ranges_unfinished_leaves_them_to_the_others(ledger):
    stopped, survivor = crew(ledger), crew(ledger)
    stopped.join(), survivor.join()
    assert stopped.take(0, 10, 4) == range(0, 4)
    assert stopped.leave() is False  # the survivor is still active
    left = ledger.get(stopped.key)
    assert left["left"] is True and left["claims"] == [[0, 0, 4]]
    assert survivor.inherit() == 0  # its process still lives
    ledger.compare_and_set(stopped.key, left, {**left, **dead_record()})  # now it is gone
    assert survivor.inherit() == 1
    assert survivor.take(0, 10, 4) == range(0, 4)
    assert survivor.leave() is True  # counted once, not twice


def test_a_worker_that_finished_its_ranges_leaves_no_record(ledger):
    worker = crew(ledger)
    worker.join()
    taken = worker.take(0, 3, 3)
    worker.finished(0, taken)
    assert worker.leave() is True
    assert ledger.get(worker.key) is None

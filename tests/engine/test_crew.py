"""Workers of one sweep meet in the ledger: one generation, each slot once, one closer.

Real ledgers (an SQLite file and a journal file). Each ``Crew`` gets a ledger
object of its own, as a separate process would; concurrent joins run on
threads. A worker "dies" the way the others see it: its record names a process
of this machine that has exited. Every crew a test makes leaves at the end, so
that no heartbeat thread outlives its test.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy

from ivory_hydra.engine.crew import Crew
from ivory_hydra.stores.beats import FileBeats, SqlBeats
from ivory_hydra.stores.format import Keys
from ivory_hydra.stores.ledger import JournalLedger, SqlLedger
from ivory_hydra.stores.liveness import beat_record
from ivory_hydra.stores.optuna_storage import open_storage, storage_url

STUDY = "study"


@pytest.fixture(params=["sqlite", "journal"])
def new_stores(request, tmp_path):
    """Makes a ledger and a beats board of their own on one shared storage (one per
    'process')."""
    if request.param == "sqlite":
        url = storage_url(None, tmp_path)
        open_storage(url)  # the database and its tables

        def sql():
            engine = sqlalchemy.create_engine(url)
            return SqlLedger(engine), SqlBeats(engine)

        return sql
    path = str(tmp_path / "sweep.journal")
    return lambda: (JournalLedger(path + ".ivory"), FileBeats(path + ".beats"))


@pytest.fixture
def crews(new_stores):
    """``crews(n)`` makes n workers; all of them leave when the test ends."""
    made: list[Crew] = []

    def make(n: int = 1, interval: float = 0.2, grace: float = 5) -> list[Crew]:
        for _ in range(n):
            ledger, beats = new_stores()
            made.append(Crew(ledger, beats, STUDY, interval=interval, grace=grace))
        return made[-n:]

    yield make
    for crew in made:
        if crew._beater is not None:
            crew._beater.stop()
            assert not crew._beater._thread.is_alive()


def dead_record() -> dict:
    """The liveness record of a process of this machine that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return {**beat_record(), "pid": child.pid, "started": "0"}


def kill(crew: Crew) -> None:
    """Make ``crew`` dead in the others' eyes (its beats stop, its process is gone)."""
    crew._beater.stop()
    dead = {**crew._record, **dead_record()}
    assert crew.ledger.compare_and_set(crew.key, crew._record, dead)
    crew.beats.write(crew._beat_key(crew.key), dead)
    crew._record = None


def slot(crew: Crew, step: int, index: int) -> dict | None:
    return crew.ledger.get(Keys.slot(STUDY, crew.generation, step, index))


def test_a_worker_that_took_the_head_but_has_not_recorded_it_is_joined(crews):
    first, second = crews(2)
    first.join()
    assert first.generation == 1 and first.started_generation
    # the moment between taking the head and recording the generation
    record = first.ledger.get(first.key)
    assert first.ledger.compare_and_set(first.key, record, {**record, "generation": None})
    second.join()
    assert second.generation == 1 and not second.started_generation


def test_workers_starting_together_share_one_generation_and_one_closer(crews):
    workers = crews(6)
    barrier = threading.Barrier(len(workers))

    def join(worker: Crew) -> None:
        barrier.wait()
        worker.join()

    threads = [threading.Thread(target=join, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [w.generation for w in workers] == [1] * len(workers)
    assert sum(w.started_generation for w in workers) == 1
    taken = [w.take(0, 10, 3) for w in workers]
    assert sorted(i for t in taken for i in t) == list(range(10))  # each slot once
    for worker, indices in zip(workers, taken, strict=True):
        worker.resolve(0, indices)
    assert all(w.take(0, 10, 3) is None for w in workers)  # the step is resolved
    closers = []
    leaving = [threading.Thread(target=lambda w=w: closers.append(w.leave(True))) for w in workers]
    for thread in leaving:
        thread.start()
    for thread in leaving:
        thread.join(timeout=60)
    assert closers.count(True) == 1  # exactly one closes


def test_a_sweep_started_again_after_all_workers_left_is_a_new_generation(crews):
    first, again = crews(2)
    first.join()
    assert first.take(0, 4, 4) == [0, 1, 2, 3]
    first.resolve(0, [0, 1, 2, 3])
    assert first.leave(True) is True
    again.join()
    assert again.generation == 2 and again.started_generation
    assert again.take(0, 4, 4) == [0, 1, 2, 3]  # a resumed sweep hands its slots out again


def test_a_dead_starter_does_not_keep_its_generation(crews):
    [worker] = crews(1)
    gone = Keys.member(STUDY, "gone")
    worker.ledger.compare_and_set(Keys.crew(STUDY), None, {"number": 1, "starter": gone})
    worker.ledger.compare_and_set(gone, None, {**dead_record(), "generation": 1})
    worker.join()
    assert worker.generation == 2


def test_a_survivor_takes_over_the_slots_of_a_dead_worker(crews):
    dead, survivor = crews(2)
    dead.join(), survivor.join()
    assert dead.take(0, 6, 4) == [0, 1, 2, 3]
    dead.resolve(0, [0])
    kill(dead)
    assert survivor.take(0, 6, 4) == [4, 5]
    assert not survivor.adopted()
    assert survivor.take(0, 6, 4) == [1, 2, 3]  # the dead worker's unfinished slots
    assert survivor.adopted() and not survivor.adopted()  # once
    assert slot(survivor, 0, 1) == {"owner": survivor.key}
    assert survivor.ledger.get(dead.key) is None  # it owns nothing any more: forgotten
    survivor.resolve(0, [1, 2, 3, 4, 5])
    assert survivor.take(0, 6, 4) is None
    assert survivor.leave(True) is True


def test_a_worker_killed_while_taking_over_loses_nothing(crews):
    """The probe of issue 15: kill A mid-job, then kill B as it takes A's slots over."""
    a, b, c = crews(3)
    for worker in (a, b, c):
        worker.join()
    assert a.take(0, 9, 3) == [0, 1, 2]
    assert b.take(0, 9, 3) == [3, 4, 5]
    assert c.take(0, 9, 3) == [6, 7, 8]
    c.resolve(0, [6, 7, 8])
    kill(a)
    # B takes over one of A's slots and dies before it ran it (or took the rest)
    assert b.take(0, 9, 1) == [0]
    kill(b)
    got = set()
    while (taken := c.take(0, 9, 9)) is not None:
        assert taken, "C waits for nobody: A and B are dead"
        got.update(taken)
        c.resolve(0, taken)
    assert got == {0, 1, 2, 3, 4, 5}  # every slot A and B held, each once
    assert c.ledger.get(a.key) is None and c.ledger.get(b.key) is None
    assert c.leave(True) is True


def test_a_slot_counted_out_to_a_worker_that_died_before_owning_it_is_found(crews):
    dead, survivor = crews(2)
    dead.join(), survivor.join()
    dead.ledger.add(Keys.cursor(STUDY, 1, 0), 2)  # counted out [0, 2), never recorded
    kill(dead)
    assert survivor.take(0, 4, 4) == [2, 3]
    assert survivor.take(0, 4, 4) == [0, 1]  # the gap
    survivor.resolve(0, [0, 1, 2, 3])
    assert survivor.take(0, 4, 4) is None


def test_resolving_twice_counts_once(crews):
    """A worker that dies after resolving, and whose slot is run again, cannot
    resolve a step early: a step is resolved by its slot records, not a count."""
    one, two = crews(2)
    one.join(), two.join()
    assert one.take(0, 3, 2) == [0, 1]
    one.resolve(0, [0, 1])
    one.resolve(0, [0, 1])
    assert two.take(0, 3, 2) == [2]
    assert one.take(0, 3, 2) == []  # slot 2 is not done: wait
    two.resolve(0, [2])
    assert one.take(0, 3, 2) is None


class CountedReads:
    """A worker's real ledger, counting the calls that read every record under a prefix."""

    def __init__(self, ledger) -> None:
        self.ledger = ledger
        self.items_calls = 0

    def __getattr__(self, name: str):
        return getattr(self.ledger, name)

    def items(self, prefix: str):
        self.items_calls += 1
        return self.ledger.items(prefix)


def test_an_idle_worker_reads_one_count_until_the_step_has_ended(crews):
    busy, idle = crews(2, interval=60)
    busy.join(), idle.join()
    assert busy.take(0, 4, 4) == [0, 1, 2, 3]
    assert idle.take(0, 4, 4) == []  # its first look reads the slot records
    idle.ledger = CountedReads(idle.ledger)
    for _ in range(5):
        assert idle.take(0, 4, 4) == []
    busy.resolve(0, [0, 1])
    assert idle.take(0, 4, 4) == []
    assert idle.ledger.items_calls == 0  # six polls, six small reads of the count
    busy.resolve(0, [2, 3])
    assert idle.take(0, 4, 4) is None  # the count says all ended: the records confirm it
    assert idle.ledger.items_calls > 0


def test_an_idle_worker_still_finds_a_dead_workers_slots_within_an_interval(crews):
    dead, idle = crews(2, interval=2)
    dead.join(), idle.join()
    assert dead.take(0, 3, 3) == [0, 1, 2]
    assert idle.take(0, 3, 3) == []
    dead.resolve(0, [0])
    kill(dead)  # the count stays short of the total: only a full read finds the slots
    assert idle.take(0, 3, 3) == []
    deadline = time.monotonic() + 10
    while not (taken := idle.take(0, 3, 3)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert taken == [1, 2] and idle.adopted()
    idle.resolve(0, taken)
    assert idle.take(0, 3, 3) is None


def test_a_worker_waiting_for_the_others_to_leave_reads_one_count(crews):
    early, late = crews(2, interval=60)
    early.join(), late.join()
    assert early.take(0, 2, 1) == [0] and late.take(0, 2, 1) == [1]
    early.resolve(0, [0]), late.resolve(0, [1])
    early.ledger = CountedReads(early.ledger)
    result: list[bool] = []
    waiting = threading.Thread(target=lambda: result.append(early.leave(True)))
    waiting.start()
    time.sleep(2.5)  # about two polls
    assert waiting.is_alive() and early.ledger.items_calls == 1  # one look at the records
    assert late.leave(True) is True  # the last one out closes
    waiting.join(timeout=10)
    assert result == [False]  # it saw the count fall, then that nobody works
    assert early.ledger.items_calls == 2


def test_one_read_of_the_workers_serves_the_trials_of_known_creators(crews):
    reader, creator = crews(2)
    reader.join(), creator.join()
    reader.ledger = CountedReads(reader.ledger)
    assert all(reader.owner_lives(creator.owner()) for _ in range(10))
    assert reader.ledger.items_calls == 1
    [newcomer] = crews(1)
    newcomer.join()
    assert reader.owner_lives(newcomer.owner())  # not in the records read: read again
    assert reader.ledger.items_calls == 2
    kill(creator)
    time.sleep(reader.poll + 0.1)
    assert not reader.owner_lives(creator.owner())


def test_a_worker_stopped_with_slots_unfinished_leaves_them_at_once(crews):
    stopped, survivor = crews(2)
    stopped.join(), survivor.join()
    assert stopped.take(0, 6, 4) == [0, 1, 2, 3]
    stopped.resolve(0, [0])
    assert stopped.leave(False) is False  # the survivor still works
    assert stopped.ledger.get(stopped.key)["left"] is True
    assert survivor.take(0, 6, 6) == [4, 5]
    assert survivor.take(0, 6, 6) == [1, 2, 3]  # no wait for its process to end
    survivor.resolve(0, [1, 2, 3, 4, 5])
    assert survivor.take(0, 6, 6) is None
    assert survivor.leave(True) is True


def test_the_last_one_out_closes_even_when_the_other_died_without_leaving(crews):
    """Every job done, one worker killed before it left: the other still closes."""
    one, two = crews(2)
    one.join(), two.join()
    one.resolve(0, one.take(0, 2, 1))
    two.resolve(0, two.take(0, 2, 1))
    kill(two)
    assert one.take(0, 2, 1) is None
    assert one.leave(True) is True


def test_a_late_joiner_is_waited_for_and_closes(crews):
    early, late = crews(2)
    early.join()
    early.resolve(0, early.take(0, 2, 2))
    late.join()
    assert late.generation == 1  # it joined the live generation
    assert late.take(0, 2, 2) is None
    closers = []
    waiter = threading.Thread(target=lambda: closers.append(early.leave(True)))
    waiter.start()
    closers.append(late.leave(True))
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert closers.count(True) == 1  # exactly one of them closes
    assert late.ledger.get(Keys.closer(STUDY, 1)) in (early.key, late.key)


def test_the_first_chain_decision_stands(crews):
    one, two = crews(2)
    one.join(), two.join()
    assert one.decide("lr", {"value": 0.1}) == {"value": 0.1}
    assert two.decide("lr", {"value": 1.0}) == {"value": 0.1}
    assert two.decision("lr") == {"value": 0.1}


def test_a_worker_taken_for_dead_stops_taking_work_at_its_next_late_beat(crews):
    slow, other = crews(2, grace=1)
    slow.join(), other.join()
    assert slow.take(0, 4, 2) == [0, 1]
    slow._beater.stop()  # its beats stop: the others may take it for dead
    record = slow.ledger.get(slow.key)
    other.ledger.compare_and_set(slow.key, record, None)  # the others forgot it
    time.sleep(0.6)  # more than half the grace period
    slow._beat()
    assert not slow.alive and slow.take(0, 4, 2) == []


class CountedGets(CountedReads):
    """A worker's real ledger, counting the reads of one record."""

    gets = 0

    def get(self, key: str):
        self.gets += 1
        return self.ledger.get(key)


def test_a_beat_on_time_does_not_read_the_workers_own_record_back(crews):
    [worker] = crews(1, interval=60, grace=30)
    worker.join()
    worker.ledger = CountedGets(worker.ledger)
    for _ in range(10):
        worker._beat()
    assert worker.ledger.gets == 0 and worker.alive

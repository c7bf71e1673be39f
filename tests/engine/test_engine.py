"""The engine on a real SQLite storage: walking, claiming, collecting, reaping, deciding."""

from __future__ import annotations

import time

import optuna
import pytest

from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.core.plan import Plan
from ivory_hydra.engine.definition import Definition
from ivory_hydra.engine.opening import Opening, open_engine
from ivory_hydra.errors import SweepBusyError
from ivory_hydra.job.session import JobSession
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.stores import trials
from ivory_hydra.stores.beats import board_of
from ivory_hydra.stores.format import BeatKeys
from ivory_hydra.stores.optuna_storage import open_storage, storage_url


def opening(url, plan, name="s", **settings):
    definition = Definition.build(mode=plan.mode, fixed=plan.fixed, swept=plan.swept, **settings)
    return Opening(
        storage_url=url,
        study_name=name,
        experiment="exp",
        kind="sweep",
        definition=definition,
        show=lambda line: None,
    )


@pytest.fixture
def url(tmp_path):
    return storage_url(None, tmp_path)


def run_all(engine, url, score, batch_size=None):
    """Drive the engine as a front end does: each claim is run in-process by a JobSession."""
    ticket = Ticket(storage=url)
    for claims in engine.walk(batch_size):
        for claim in claims:
            session = JobSession.begin(ticket, claim)
            session.finish(session.score(score(claim.params)))


def test_a_chain_decides_by_value_and_stores_the_decision(url):
    plan = Plan.from_params("chain", {"a": [1, 2, 3], "b": [10, 20]})
    engine = open_engine(opening(url, plan))
    run_all(engine, url, lambda p: (p["a"] - 2) ** 2 + p.get("b", 0) / 100)
    summary = engine.summary()
    engine.close(summary)
    assert summary.decisions["a"] == {"value": 2, "index": 1, "score": 0.0, "run": "run#1"}
    assert summary.decisions["b"]["value"] == 10
    assert summary.best.run_name == "run#1" and summary.best.params == {"a": 2}
    study = optuna.load_study(study_name="s", storage=url)
    assert study.user_attrs["decisions"]["a"]["value"] == 2
    assert study.user_attrs["summary"]["finished"] is True
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 5


def test_batches_are_lazy_and_bounded(url):
    plan = Plan.from_params("product", {"a": list(range(1000)), "b": list(range(1000))})
    engine = open_engine(opening(url, plan))
    walk = engine.walk(3)
    first = next(walk)
    assert [c.params for c in first] == [{"a": 0, "b": b} for b in range(3)]
    assert [c.number for c in first] == [0, 1, 2]
    assert len(engine.study.trials()) == 3  # trials are created per batch, not up front
    engine.fail_in_flight("stopped by the test")
    walk.close()
    engine.coordination.leave(False)
    assert {t.state.name for t in engine.study.trials()} == {"FAIL"}


def test_a_job_that_never_recorded_is_finished_by_the_collector(url):
    plan = Plan.from_params("product", {"a": [1, 2, 3]})
    engine = open_engine(opening(url, plan))
    walk = engine.walk()
    claims = next(walk)
    ticket = Ticket(storage=url)
    session = JobSession.begin(ticket, claims[0])
    session.finish(Outcome("complete", 1.0))
    # claims[1]: its process could not reach the storage; the launcher returned its value
    results = engine.collect(claims, {claims[1].number: Outcome("complete", 2.0)})
    assert [r.outcome.state for r in results] == ["complete", "complete", "fail"]
    assert results[2].outcome.reason == "the job ended without recording an outcome"
    stored = engine.study.trials()
    assert [t.value for t in stored] == [1.0, 2.0, None]
    assert stored[1].datetime_start is not None
    with pytest.raises(StopIteration):
        next(walk)


def test_a_restart_reaps_what_a_dead_process_left_and_runs_it_again(url):
    plan = Plan.from_params("product", {"a": [1, 2, 3]})
    first = open_engine(opening(url, plan, grace_period=2.0, heartbeat_interval=1.0))
    claims = next(first.walk())
    storage = open_storage(url)
    ticket = Ticket(storage=url)
    done = JobSession.begin(ticket, claims[0])
    done.finish(Outcome("complete", 1.0))
    assert trials.start(storage, claims[1].trial_id)  # started, then its process died
    dead = {"at": 0, "host": "gone", "pid": 1}
    board_of(storage).write(BeatKeys.trial(claims[1].trial_id), dead)
    first.coordination.leave(False)  # the sweeper "died": its lease is given up (or would go stale)

    second = open_engine(opening(url, plan, grace_period=2.0, heartbeat_interval=1.0))
    assert second.done == 1
    reaped = [storage.get_trial(c.trial_id) for c in claims[1:]]
    assert [t.state.name for t in reaped] == ["FAIL", "FAIL"]
    assert "stopped beating" in reaped[0].user_attrs["reason"]
    assert "before the job started" in reaped[1].user_attrs["reason"]
    run_all(second, url, lambda p: float(p["a"]))
    summary = second.summary()
    assert summary.counts == {"complete": 3} and summary.failed == []
    slots = [t.user_attrs["slot"] for t in second.study.trials() if t.state.name == "COMPLETE"]
    assert sorted(slots) == ["0.0", "0.1", "0.2"]


def test_a_live_sweeper_holds_the_lease(url):
    plan = Plan.from_params("product", {"a": [1, 2]})
    engine = open_engine(opening(url, plan))
    with pytest.raises(SweepBusyError, match="already running: pid"):
        open_engine(opening(url, plan))
    engine.coordination.leave(False)
    open_engine(opening(url, plan)).coordination.leave(False)  # free again


def test_waits_for_a_run_that_a_live_process_elsewhere_still_runs(url):
    plan = Plan.from_params("chain", {"a": [1, 2]})
    first = open_engine(opening(url, plan, grace_period=30.0, heartbeat_interval=0.2))
    claims = next(first.walk())
    storage = open_storage(url)
    ticket = Ticket(storage=url, heartbeat_interval=0.2)
    sessions = [JobSession.begin(ticket, c) for c in claims]  # still beating
    sessions[0].finish(Outcome("complete", 5.0))
    first.coordination.leave(False)
    second = open_engine(opening(url, plan, grace_period=30.0, heartbeat_interval=0.2))

    import threading

    finisher = threading.Timer(1.0, lambda: sessions[1].finish(Outcome("complete", 3.0)))
    finisher.start()
    start = time.monotonic()
    assert list(second.walk()) == []  # nothing to run here: it waited for the other one
    assert time.monotonic() - start >= 0.9
    finisher.join()
    assert second.decisions["a"]["value"] == 2
    assert len(storage.get_all_trials(second.study.study_id)) == 2
    second.coordination.leave(False)


def test_workers_opening_a_sweep_at_once_number_its_task_once(tmp_path):
    """Of several workers that open a new shared sweep together, one numbers its task."""
    import threading

    from ivory_hydra.stores import numbering
    from ivory_hydra.stores.ledger import ledger_for

    url = storage_url(str(tmp_path / "sweep.journal"))
    plan = Plan.from_params("product", {"a": [1, 2]})
    engines, barrier = [], threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        engines.append(open_engine(opening(url, plan)))

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [engine.task for engine in engines] == ["task#0"] * 4
    assert numbering.allocate(ledger_for(url), "exp", "task") == 1  # one number was taken
    for engine in engines:
        engine.close()


def test_a_waiting_trial_its_creator_starts_while_it_is_reaped_is_left_to_it(url):
    """A reaper reads a WAITING trial of a creator it takes for dead; the creator
    starts it in between. The reaper leaves it (the switch from WAITING is one
    compare-and-set), so its job runs once, not once there and once again here."""
    plan = Plan.from_params("product", {"a": [1, 2]})
    engine = open_engine(opening(url, plan, grace_period=2.0, heartbeat_interval=1.0))
    claims = next(engine.walk())
    storage = open_storage(url)
    stale = storage.get_trial(claims[0].trial_id)  # what the reaper read
    assert stale.state.name == "WAITING"
    assert trials.start(storage, claims[0].trial_id)  # its creator starts it meanwhile
    assert engine._reap(stale, None) is False
    assert storage.get_trial(claims[0].trial_id).state.name == "RUNNING"
    still = storage.get_trial(claims[1].trial_id)  # never started: reaped
    assert engine._reap(still, None) is True
    reaped = storage.get_trial(claims[1].trial_id)
    assert reaped.state.name == "FAIL" and "before the job started" in reaped.user_attrs["reason"]
    engine.coordination.leave(False)


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_rerun_runs_a_failed_job_of_a_decided_chain_step_again(tmp_path, kind):
    """A chain step decided while one of its jobs failed (the would-be winner: failed
    runs never win): the next run of the command runs that job again, and the decision
    stands, alone on SQLite as among workers on a journal file."""
    url = storage_url(str(tmp_path / "sweep.journal") if kind == "journal" else None, tmp_path)
    plan = Plan.from_params("chain", {"a": [1, 2, 3], "b": [10, 20]})

    def score(params, failing=()):
        a = params["a"]
        return float("nan") if a in failing else (a - 2) ** 2 + params.get("b", 0) / 100

    first = open_engine(opening(url, plan, grace_period=2.0, heartbeat_interval=0.2))
    run_all(first, url, lambda p: score(p, failing={2}))
    first.close()
    assert first.decisions["a"]["value"] == 1  # a=2 failed: a=1 and a=3 tie, the earliest wins
    assert [f.slot for f in first.summary().failed] == ["0.1"]

    again = open_engine(opening(url, plan, grace_period=2.0, heartbeat_interval=0.2))
    ran = []
    run_all(again, url, lambda p: ran.append(p) or score(p))
    summary = again.summary()
    again.close(summary)
    assert ran == [{"a": 2}]  # the failed job, and nothing else
    assert again.decisions == first.decisions  # the decision made stands
    assert summary.failed == [] and summary.finished
    study = optuna.load_study(study_name="s", storage=open_storage(url))
    assert study.user_attrs["summary"]["finished"] is True
    states = [(t.user_attrs["slot"], t.state.name) for t in study.trials]
    assert states == [
        ("0.0", "COMPLETE"),
        ("0.1", "FAIL"),
        ("0.2", "COMPLETE"),
        ("1.0", "COMPLETE"),
        ("1.1", "COMPLETE"),
        ("0.1", "COMPLETE"),
    ]

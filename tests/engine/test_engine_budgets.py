"""Budgets in the engine, on real storages: a timeout and a failure budget stop an
invocation; what a budget left unrun is given back, no failure, and the next
invocation runs exactly that."""

from __future__ import annotations

import time
from collections import Counter

import optuna
import pytest

from ivory_hydra.core.budgets import NotStarted
from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.core.plan import Plan
from ivory_hydra.engine.definition import Definition, DefinitionError
from ivory_hydra.engine.opening import Opening, open_engine
from ivory_hydra.job.session import JobSession
from ivory_hydra.stores.optuna_storage import storage_url


def opening(url, plan, **settings):
    definition = Definition.build(mode=plan.mode, fixed=plan.fixed, swept=plan.swept, **settings)
    return Opening(
        storage_url=url,
        study_name="s",
        experiment="exp",
        kind="sweep",
        definition=definition,
        show=lambda line: None,
    )


@pytest.fixture
def url(tmp_path):
    return storage_url(None, tmp_path)


def run_walk(engine, url, score, seconds=0.0, batch_size=None):
    """Run every handed-out job in this process (each takes ``seconds``), as a front
    end does with the ticket the engine gives; close; return the summary."""
    ticket = engine.definition.ticket(url, None, "s", engine.budgets.budget)
    for claims in engine.walk(batch_size):
        for claim in claims:
            session = JobSession.begin(ticket, claim)
            time.sleep(seconds)
            value = score(claim.params)
            failed = Outcome("fail", None, "ValueError: bad", "ValueError")
            session.finish(failed if value is None else session.score(value))
    summary = engine.summary()
    engine.close(summary)
    return summary


def complete_slots(url) -> Counter:
    study = optuna.load_study(study_name="s", storage=url)
    return Counter(t.user_attrs["slot"] for t in study.trials if t.state.name == "COMPLETE")


def test_a_timeout_ends_the_walk_and_the_next_invocation_runs_the_rest(url):
    plan = Plan.from_params("product", {"a": list(range(8))})
    first = open_engine(opening(url, plan, timeout=3.0))
    summary = run_walk(first, url, lambda p: float(p["a"]), seconds=0.6, batch_size=1)
    assert summary.stopped_by is not None and summary.stopped_by.setting == "timeout"
    assert summary.stopped_by.reason == "timeout=3 s passed"
    assert 1 <= summary.counts["complete"] < 8 and summary.failed == []
    assert summary.left == 8 - summary.counts["complete"]
    assert summary.as_dict()["stopped_by"]["left"] == summary.left
    assert summary.status == "KILLED"

    second = open_engine(opening(url, plan))  # the same sweep, run again without a budget
    again = run_walk(second, url, lambda p: float(p["a"]))
    assert again.stopped_by is None and again.as_dict()["stopped_by"] is None
    assert again.counts == {"complete": 8} and again.finished
    assert complete_slots(url) == Counter(f"0.{i}" for i in range(8))  # each ran once


def test_a_job_given_back_is_no_failure_and_its_slot_runs_in_the_next_invocation(url):
    """Jobs a launcher queued see the deadline before they start: the engine gives
    them back (KILLED-like, not counted as failures) and a rerun runs them."""
    plan = Plan.from_params("product", {"a": [1, 2, 3]})
    engine = open_engine(opening(url, plan, timeout=60.0))
    walk = engine.walk()
    claims = next(walk)
    ticket = engine.definition.ticket(url, None, "s", engine.budgets.budget)
    session = JobSession.begin(ticket, claims[0])
    session.finish(session.score(1.0))
    left = NotStarted("timeout=60 s passed").outcome
    results = engine.collect(claims, {c.job: left for c in claims[1:]})
    assert [r.outcome.error for r in results] == [None, "BudgetSpent", "BudgetSpent"]
    assert results[1].outcome.reason == "not started: timeout=60 s passed"
    walk.close()
    summary = engine.summary()
    engine.close(summary)
    assert summary.failed == [] and summary.counts == {"complete": 1}
    assert summary.left == 2

    second = open_engine(opening(url, plan))
    assert second.done == 1 and set(second.board.left) == {"0.1", "0.2"}
    again = run_walk(second, url, lambda p: float(p["a"]))
    assert again.finished and not second.board.left
    assert complete_slots(url) == Counter(["0.0", "0.1", "0.2"])


@pytest.mark.parametrize("limit", [0, 2])
def test_max_failures_stops_after_that_many_failures(url, limit):
    plan = Plan.from_params("product", {"a": list(range(8))})
    engine = open_engine(opening(url, plan, max_failures=limit))
    ran = []

    def score(params):
        ran.append(params["a"])
        return None if params["a"] >= 2 else float(params["a"])  # from a=2 on, every job fails

    summary = run_walk(engine, url, score, batch_size=1)
    stopping = max(limit, 1)  # the limit-th failure stops the sweep (0: the first)
    assert ran == list(range(2 + stopping))
    failed = "1 job" if stopping == 1 else f"{stopping} jobs"
    assert summary.stopped_by.reason == f"max_failures={limit}: {failed} failed"
    assert len(summary.failed) == stopping and summary.left == 8 - 2
    assert summary.status == "FAILED"

    fixed = open_engine(opening(url, plan, max_failures=limit))  # a fresh budget
    again = run_walk(fixed, url, lambda p: float(p["a"]))
    assert again.finished and again.stopped_by is None


def test_a_chain_stopped_mid_step_resumes_with_its_decisions(url):
    plan = Plan.from_params("chain", {"a": [1, 2, 3], "b": [10, 20, 30]})
    first = open_engine(opening(url, plan, timeout=60.0))
    walk = first.walk(1)
    ticket = first.definition.ticket(url, None, "s", first.budgets.budget)
    for _ in range(4):  # step a (3 jobs) and the first job of step b
        [claim] = next(walk)
        session = JobSession.begin(ticket, claim)
        session.finish(session.score(abs(claim.params["a"] - 2) + claim.params.get("b", 0)))
    first.budgets.budget = first.budgets.budget.started(time.time() - 61, "k")  # time is up
    with pytest.raises(StopIteration):
        next(walk)
    summary = first.summary()
    first.close(summary)
    assert summary.stopped_by.setting == "timeout" and summary.left == 2
    assert summary.decisions["a"]["value"] == 2

    second = open_engine(opening(url, plan))
    handed = []

    def score(params):
        handed.append(params)
        return abs(params["a"] - 2) + params["b"]

    again = run_walk(second, url, score)
    assert handed == [{"a": 2, "b": 20}, {"a": 2, "b": 30}]  # step b's rest, at a's winner
    assert again.finished and again.decisions["a"]["value"] == 2


def test_a_configuration_stopped_between_repeats_keeps_its_finished_ones(url):
    plan = Plan.from_params("product", {"a": [1, 2], "fold": [0, 1, 2]})
    engine = open_engine(opening(url, plan, timeout=60.0, repeat=["fold"]))
    walk = engine.walk()
    claims = next(walk)  # both configurations' three repeats
    ticket = engine.definition.ticket(url, None, "s", engine.budgets.budget)
    for claim in claims[:4]:  # config 0's three repeats, config 1's first
        session = JobSession.begin(ticket, claim)
        session.finish(session.score(float(claim.params["a"])))
    engine.budgets.budget = engine.budgets.budget.started(time.time() - 61, "k")
    left = NotStarted("timeout=60 s passed").outcome
    engine.collect(claims, {c.job: left for c in claims[4:]})
    with pytest.raises(StopIteration):
        next(walk)
    summary = engine.summary()
    engine.close(summary)
    assert summary.counts == {"complete": 1} and summary.failed == [] and summary.left == 1
    study = optuna.load_study(study_name="s", storage=url)
    given = study.trials[1]
    assert given.state.name == "FAIL" and given.user_attrs["error"] == "BudgetSpent"
    reason = "timeout=60 s passed after 1 of 3 repeats (the rest run later)"
    assert given.user_attrs["reason"] == reason

    second = open_engine(opening(url, plan, repeat=["fold"]))
    ran = []

    def score(params):
        ran.append(params["fold"])
        return float(params["a"])

    again = run_walk(second, url, score)
    assert ran == [1, 2]  # only the missing repeats
    assert again.finished and again.counts == {"complete": 2}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": 0}, "timeout: must be a positive number of seconds or null, not 0"),
        ({"timeout": -3.5}, "timeout: must be a positive number of seconds or null, not -3.5"),
        ({"timeout": "1h"}, "timeout: must be a positive number of seconds or null, not '1h'"),
        ({"max_failures": -1}, "max_failures: must be a whole number >= 0 or null, not -1"),
        ({"max_failures": 1.5}, "max_failures: must be a whole number >= 0 or null, not 1.5"),
    ],
)
def test_a_budget_that_cannot_be_kept_is_refused(settings, message):
    with pytest.raises(DefinitionError) as error:
        Definition.build(mode="product", fixed={}, swept={"a": [1, 2]}, **settings)
    assert str(error.value) == message


def test_optimize_counts_n_trials_across_resumes_and_not_the_jobs_given_back(url):
    from optuna.distributions import FloatDistribution

    space = {"x": FloatDistribution(0.0, 1.0)}
    plan = Plan("optimize", {}, {}, trials=6)
    first = open_engine(opening(url, plan, n_trials=6, space=space, timeout=60.0))
    walk = first.walk(3)
    claims = next(walk)
    ticket = first.definition.ticket(url, None, "s", first.budgets.budget)
    session = JobSession.begin(ticket, claims[0])
    session.finish(session.score(claims[0].params["x"]))
    first.budgets.budget = first.budgets.budget.started(time.time() - 61, "k")  # time is up
    left = NotStarted("timeout=60 s passed").outcome
    first.collect(claims, {c.job: left for c in claims[1:]})
    with pytest.raises(StopIteration):
        next(walk)
    summary = first.summary()
    first.close(summary)
    assert summary.counts == {"complete": 1} and summary.left == 5 and summary.failed == []

    second = open_engine(opening(url, plan, n_trials=6, space=space))
    again = run_walk(second, url, lambda p: p["x"])
    assert again.finished and again.counts == {"complete": 6}  # 6 sampled trials ran
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.state.name for t in study.trials].count("COMPLETE") == 6

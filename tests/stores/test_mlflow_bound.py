"""Bounded MLflow calls: a deadline per call, one line per outage, skipped while one hangs."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ivory_hydra._compat import MLFLOW_DB_LOGGER
from ivory_hydra.stores import mlflow_bound
from ivory_hydra.stores.mlflow_bound import Budget, MirrorLagging, bounded, lagging

STORE = "postgresql://user:secret@db.example/mlflow"


@pytest.fixture
def store(request):
    """A store name of this test's own (outages are per process and store)."""
    return f"{STORE}-{request.node.name}"


def outage_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == mlflow_bound.__name__]


def test_a_call_that_hangs_is_cut_at_its_deadline_and_later_ones_are_skipped(store, caplog):
    release = threading.Event()
    start = time.monotonic()
    with pytest.raises(MirrorLagging, match="did not answer|no answer"):
        bounded(release.wait, 30, store=store, seconds=0.3)
    assert time.monotonic() - start < 1.0
    assert lagging(store)
    start = time.monotonic()
    with pytest.raises(MirrorLagging, match="still does not answer"):  # skipped at once
        bounded(lambda: "never called", store=store, seconds=5)
    assert time.monotonic() - start < 0.1
    [line] = outage_lines(caplog)
    assert "secret" not in line and "user:***@db.example" in line and "catches up" in line
    release.set()  # the call that hung ends well: the store is back
    for _ in range(100):
        if not lagging(store):
            break
        time.sleep(0.02)
    assert bounded(lambda: 42, store=store, seconds=1) == 42 and not lagging(store)


def test_one_line_per_outage_not_per_call(store, caplog):
    def fail():
        raise ConnectionError("refused\nmore lines")

    for _ in range(3):
        with pytest.raises(MirrorLagging, match="ConnectionError: refused"):
            bounded(fail, store=store, seconds=1)
    assert len(outage_lines(caplog)) == 1
    assert bounded(lambda: 1, store=store, seconds=1) == 1  # the outage is over
    with pytest.raises(MirrorLagging):
        bounded(fail, store=store, seconds=1)  # a new outage: one more line
    assert len(outage_lines(caplog)) == 2


def test_mlflows_own_log_inside_a_call_is_kept_out(store, caplog):
    def noisy():
        logging.getLogger(MLFLOW_DB_LOGGER).error("SQLAlchemy database error", exc_info=True)
        raise RuntimeError("database is locked")

    with pytest.raises(MirrorLagging):
        bounded(noisy, store=store, seconds=1)
    assert not [r for r in caplog.records if r.name == MLFLOW_DB_LOGGER]
    logging.getLogger(MLFLOW_DB_LOGGER).error("the user's own call")  # outside: kept
    assert [r for r in caplog.records if r.name == MLFLOW_DB_LOGGER]


def test_a_budget_bounds_all_its_calls_together(store):
    budget = Budget(store, 0.5)
    assert budget.call(time.sleep, 0.3) is None
    with pytest.raises(MirrorLagging):
        budget.call(time.sleep, 0.5)
    assert 0.45 < budget.spent < 0.8
    with pytest.raises(MirrorLagging, match="no time left|still does not answer"):
        budget.call(lambda: None)


def test_a_call_inside_a_call_runs_under_the_outer_deadline(store):
    def outer():
        return bounded(lambda: threading.current_thread().name, store=store, seconds=0.01)

    assert bounded(outer, store=store, seconds=1) == "ivory-hydra-mlflow"

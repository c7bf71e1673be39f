"""A job's MLflow calls never hold it longer than ``mlflow.timeout``: a locked SQLite store."""

from __future__ import annotations

import logging
import shutil
import time

import pytest

from ivory_hydra.core.objectives import Objectives
from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.core.plan import Point
from ivory_hydra.job.session import JobSession
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.stores import mlflow_client
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.format import Tag, TrialAttr
from ivory_hydra.stores.mlflow_mirror import ChildSpec, MlflowMirror
from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.study import Study, TrialSpec
from ivory_hydra.stores.trials import Assignment

TIMEOUT = 2.0
SLACK = 3.0  # what the Optuna side of a job may take on a busy machine


@pytest.fixture
def job(tmp_path, mlflow_template):
    """A trial and its child run, as the sweeper issues them; what a job needs."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    mirror = MlflowMirror(f"sqlite:///{tmp_path}/mlflow.db", "locked")
    parent = mirror.open_parent("task#0", {Tag.STUDY_NAME: "s"})
    url = storage_url(None, tmp_path)
    storage = open_storage(url)
    study = Study.open(storage, "s", Objectives.of("minimize"))
    dists = distributions_for({"a": [1, 2]})
    trial_ids = []
    for i in (1, 2):
        spec = TrialSpec({"a": i}, dists, {"run_name": f"run#{i}"})
        [(trial_id, number)] = study.create_trials([spec])
        run_id = mirror.create_child(parent, ChildSpec(f"run#{i}", {"a": i}))
        trial_ids.append((trial_id, number, run_id))
    ticket = Ticket(storage=url, tracking_uri=mirror.tracking_uri, mlflow_timeout=TIMEOUT)
    return ticket, storage, mirror, trial_ids


def run_job(ticket, trial_id, number, run_id) -> float:
    """Begin and finish one job; the seconds it spent in the session."""
    claim = Assignment(trial_id, number, f"run#{number}", Point(0, 0, {"a": 1}), {}, run_id)
    start = time.monotonic()
    session = JobSession.begin(ticket, claim)
    session.finish(Outcome("complete", 0.5))
    return time.monotonic() - start


def test_a_locked_store_holds_each_job_no_longer_than_its_timeout(job, caplog):
    """The run is made active from what the sweeper's process created (no read); ending
    it waits for the lock, as long as the timeout allows."""
    from mlflow.tracking import MlflowClient
    from sqlite_lock import sqlite_locked

    ticket, storage, mirror, trial_ids = job
    client = MlflowClient(mirror.tracking_uri)
    with sqlite_locked(_db(mirror)):
        took = [run_job(ticket, *ids) for ids in trial_ids]
    assert took[0] < TIMEOUT + SLACK, took  # cut at the timeout (unbounded: a minute)
    assert took[1] < TIMEOUT, took  # the outage is known: no second wait
    for trial_id, _, _ in trial_ids:
        trial = storage.get_trial(trial_id)
        assert trial.state.name == "COMPLETE" and trial.value == 0.5
    # the second run stays RUNNING (its end was skipped): the closer settles it
    assert client.get_run(trial_ids[1][2]).info.status == "RUNNING"
    # the first job learnt of the outage as its trial finished; the second before it began
    assert storage.get_trial(trial_ids[1][0]).user_attrs[TrialAttr.MIRROR_LAGS] is True
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "cannot be reached" in lines[0].getMessage(), lines
    assert not [r for r in caplog.records if r.exc_info]


def test_a_job_that_reads_its_run_is_not_held_past_its_timeout_either(job, caplog):
    """A worker of another process reads its run to make it active: that read waits too."""
    from sqlite_lock import sqlite_locked

    ticket, storage, mirror, trial_ids = job
    for _, _, run_id in trial_ids:
        mlflow_client.created_run(run_id)  # what another process does not have
    with sqlite_locked(_db(mirror)):
        took = [run_job(ticket, *ids) for ids in trial_ids]
    assert took[0] < TIMEOUT + SLACK, took  # cut at the timeout (unbounded: a minute)
    assert took[1] < TIMEOUT, took  # the outage is known: no second wait
    for trial_id, _, _ in trial_ids:
        trial = storage.get_trial(trial_id)
        assert trial.state.name == "COMPLETE" and trial.value == 0.5
        assert trial.user_attrs[TrialAttr.MIRROR_LAGS] is True  # its run was never active
    import mlflow

    assert mlflow.active_run() is None
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "cannot be reached" in lines[0].getMessage(), lines
    assert not [r for r in caplog.records if r.exc_info]


def test_a_store_that_answers_makes_the_run_active_and_ends_it(job):
    import mlflow
    from mlflow.tracking import MlflowClient

    ticket, storage, mirror, [(trial_id, number, run_id), _] = job
    claim = Assignment(trial_id, number, f"run#{number}", Point(0, 0, {"a": 1}), {}, run_id)
    session = JobSession.begin(ticket, claim)
    assert mlflow.active_run().info.run_id == run_id
    mlflow.log_metric("user", 1.0)  # the user's own call lands in the child run
    session.finish(Outcome("complete", 0.5))
    run = MlflowClient(mirror.tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics == {"user": 1.0, "score": 0.5}
    assert TrialAttr.MIRROR_LAGS not in storage.get_trial(trial_id).user_attrs
    assert mlflow.active_run() is None


def _db(mirror):
    from pathlib import Path

    return Path(mirror.tracking_uri.removeprefix("sqlite:///"))

"""The task a launcher runs for each job, in the job's own process.

A real SQLite storage and a real MLflow SQLite store, locked by another process
so that opening the job's run takes its whole ``mlflow.timeout``.
"""

from __future__ import annotations

import shutil
import time

import pytest
from hydra.conf import HydraConf
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ivory_hydra.core.budgets import Budget, NotStarted
from ivory_hydra.core.objectives import Objectives
from ivory_hydra.core.outcomes import BUDGET_SPENT
from ivory_hydra.core.plan import Point
from ivory_hydra.job.hydra_task import TrialTask
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.study import Study, TrialSpec
from ivory_hydra.stores.trials import Assignment


@pytest.fixture
def job_zero(tmp_path):
    """Hydra's config of job 0, as a launcher sets it in the job's process."""
    hydra = OmegaConf.structured(HydraConf)
    hydra.job.num = 0
    hydra.runtime.output_dir = str(tmp_path / "0")
    hydra.output_subdir = None
    HydraConfig.instance().set_config(OmegaConf.create({"hydra": hydra}))
    yield
    HydraConfig.instance().cfg = None


def test_a_job_whose_stores_opened_past_the_timeout_does_not_run(
    tmp_path, mlflow_template, job_zero
):
    """The budget passes as the job is handed its trial, the locked MLflow store holds
    the job for its mlflow.timeout, and the budget is spent by then: the app does not
    run, and its trial is given back for a resume."""
    from sqlite_lock import sqlite_locked

    url = storage_url(None, tmp_path)
    storage = open_storage(url)
    study = Study.open(storage, "s", Objectives.of("minimize"))
    spec = TrialSpec({"a": 1}, distributions_for({"a": [1, 2]}), {"run_name": "run#0"})
    [(trial_id, number)] = study.create_trials([spec])
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    ticket = Ticket(
        storage=url,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
        mlflow_timeout=2.0,
        budget=Budget(timeout=1.0).started(time.time(), "failures"),
    )
    ran: list[object] = []
    task = TrialTask(ran.append, ticket)
    point = Point(0, 0, {"a": 1})
    task.assignments[0] = Assignment(trial_id, number, "run#0", point, {"a": 1}, "0" * 32)
    with sqlite_locked(tmp_path / "mlflow.db"):
        returned = task(OmegaConf.create({"a": 1}))
    assert ran == []
    assert returned == NotStarted("timeout=1 s passed")
    stored = storage.get_trial(trial_id)
    assert stored.state == TrialState.FAIL and stored.user_attrs["error"] == BUDGET_SPENT

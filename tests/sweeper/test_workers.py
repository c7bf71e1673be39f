"""Many workers, one sweep: the same command in three processes on one shared storage.

Real processes on a real PostgreSQL server and on a journal file. The app
records every job it starts and ends (its own record of what ran); the
checks read that record, the Optuna storage and the MLflow store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from conftest import APPS
from convergence import storage_of as open_storage
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

WORKERS = 3


def score(a: int, b: float = 0.0, penalty: float = 0.5) -> float:
    return (a - 2) ** 2 + b + penalty


@pytest.fixture
def storage(shared_storage):
    return shared_storage


def start(cwd: Path, storage: str, record: Path, *args: str, name: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = open(cwd / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [
            sys.executable,
            str(APPS / "sweep/app.py"),
            "-m",
            f"hydra.sweeper.storage={storage}",
            f"record={record}",
            f"hydra.sweep.dir={name}",
            "hydra.sweeper.heartbeat_interval=1",
            "hydra.sweeper.grace_period=6",
            *args,
        ],
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )


def records(path: Path, event: str = "end") -> list[dict]:
    if not path.exists():
        return []
    return [e for e in map(json.loads, path.read_text().splitlines()) if e["event"] == event]


def run_workers(tmp_path, storage, *args, kill_one=None):
    """Start three workers at once; optionally signal one (``kill_one``) in the middle of a job."""
    shutil.copy(tmp_path.parent / "mlflow-template.db", tmp_path / "mlflow.db")
    record = tmp_path / "jobs.jsonl"
    procs = [start(tmp_path, storage, record, *args, name=f"w{i}") for i in range(WORKERS)]
    killed = None
    if kill_one:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            started = Counter(e["pid"] for e in records(record, "start"))
            ended = Counter(e["pid"] for e in records(record, "end"))
            # a worker that ended a job and is in the middle of its next one
            busy = [p for p in procs if 0 < ended[p.pid] < started[p.pid]]
            if busy:
                killed = busy[0]
                killed.send_signal(kill_one)
                break
            time.sleep(0.02)
        assert killed is not None, "no worker ran two jobs"
    codes = [p.wait(timeout=300) for p in procs]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(WORKERS)]
    return procs, codes, logs, record, killed


@pytest.fixture(autouse=True)
def template(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path.parent / "mlflow-template.db")


def check_stores(tmp_path, storage, jobs: int):
    """Trials and MLflow runs match one to one under one parent; nothing RUNNING."""
    [summary] = optuna.get_all_study_summaries(open_storage(storage))
    study = optuna.load_study(study_name=summary.study_name, storage=open_storage(storage))
    trials = study.trials
    assert not [t.number for t in trials if not t.state.is_finished()]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len({t.user_attrs["slot"] for t in complete}) == jobs
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # job numbers unique
    names = [t.user_attrs["run_name"] for t in trials]
    assert len(set(names)) == len(names)  # run numbers unique
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {r.info.run_id for r in children}
    assert "RUNNING" not in {r.info.status for r in runs}
    return study


def test_three_workers_share_a_product_sweep(tmp_path, storage):
    procs, codes, logs, record, _ = run_workers(tmp_path, storage, "a=0-29", "sleep=0.1")
    assert codes == [0, 0, 0], logs
    ended = Counter(e["a"] for e in records(record))
    assert ended == Counter(range(30))  # every job ran exactly once
    shares = Counter(e["pid"] for e in records(record))
    assert set(shares) <= {p.pid for p in procs} and len(shares) >= 2, shares
    assert all("This worker ran" in log for log in logs)
    assert sum("task#0: 30 jobs, 30 complete" in log for log in logs) == 1  # the last one's
    study = check_stores(tmp_path, storage, 30)
    assert study.best_value == 0.5


def test_three_workers_share_a_chain_and_use_the_same_winners(tmp_path, storage):
    args = ("hydra.sweeper.mode=chain", "a=0-9", "b=0.0_0.9_0.1", "model=small,large", "sleep=0.1")
    procs, codes, logs, record, _ = run_workers(tmp_path, storage, *args)
    assert codes == [0, 0, 0], logs
    ended = records(record)
    expected = Counter((a, 0.0, "small") for a in range(10))  # step 0 at the others' defaults
    expected += Counter((2, b / 10, "small") for b in range(10))  # a fixed at its winner
    expected += Counter((2, 0.0, m) for m in ("small", "large"))
    assert Counter((e["a"], e["b"], e["model"]) for e in ended) == expected
    # step 2 ran at a=2 (the winner) for every worker, step 3 at a=2, b=0.0
    assert {(e["a"], e["model"]) for e in ended if e["b"] != 0.0} == {(2, "small")}
    assert {(e["a"], e["b"]) for e in ended if e["model"] == "large"} == {(2, 0.0)}
    for log in logs:
        assert "Chain: a is fixed at 2\n" in log and "Chain: b is fixed at 0\n" in log
    study = check_stores(tmp_path, storage, 22)
    assert study.user_attrs["decisions"]["model"]["value"] == "large"


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_killed_workers_job_runs_again_elsewhere(tmp_path, storage, signum):
    """SIGKILL: the worker's beats stop. SIGTERM: it fails its batch and leaves its
    unfinished range to the others. Either way the others run that range."""
    procs, codes, logs, record, killed = run_workers(
        tmp_path, storage, "a=0-14", "sleep=0.5", kill_one=signum
    )
    assert killed is not None
    assert killed.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 143)
    assert sorted(c for p, c in zip(procs, codes, strict=True) if p is not killed) == [0, 0]
    ended = Counter(e["a"] for e in records(record))
    assert ended == Counter(range(15)), ended  # none lost, none twice
    what = "stopped" if signum == signal.SIGKILL else "left"
    assert any(f"A worker of this sweep {what}" in log for log in logs)
    study = check_stores(tmp_path, storage, 15)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed and all(t.user_attrs["error"] == "Interrupted" for t in failed)


def test_sqlite_serves_one_sweeper_at_a_time(tmp_path):
    shutil.copy(tmp_path.parent / "mlflow-template.db", tmp_path / "mlflow.db")
    record = tmp_path / "jobs.jsonl"
    first = start(
        tmp_path, f"sqlite:///{tmp_path}/optuna.db", record, "a=0-5", "sleep=0.5", name="w0"
    )
    deadline = time.monotonic() + 60
    while not records(record, "start") and time.monotonic() < deadline:
        time.sleep(0.05)
    second = start(
        tmp_path, f"sqlite:///{tmp_path}/optuna.db", record, "a=0-5", "sleep=0.5", name="w1"
    )
    assert second.wait(timeout=120) == 1
    assert first.wait(timeout=120) == 0
    message = (tmp_path / "w1.log").read_text()
    assert (
        "is already running" in message and "use a PostgreSQL storage or a journal file" in message
    )


def test_three_workers_share_a_repeat_sweep_each_repeat_once(tmp_path, storage):
    """A configuration is one trial; its repeats (b) run once each, over three workers."""
    args = ("a=0-5", "b=0.0,0.5,1.0", "hydra.sweeper.repeat=[b]", "sleep=0.1")
    procs, codes, logs, record, _ = run_workers(tmp_path, storage, *args)
    assert codes == [0, 0, 0], logs
    ended = Counter((e["a"], e["b"]) for e in records(record))
    assert ended == Counter((a, b) for a in range(6) for b in (0.0, 0.5, 1.0))
    [summary] = optuna.get_all_study_summaries(open_storage(storage))
    study = optuna.load_study(study_name=summary.study_name, storage=open_storage(storage))
    assert len(study.trials) == 6 and {t.state.name for t in study.trials} == {"COMPLETE"}
    for trial in study.trials:
        a = trial.params["a"]
        assert "b" not in trial.params and len(trial.intermediate_values) == 3
        assert trial.value == pytest.approx(score(a) + 0.5)  # the mean over b
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    assert len(runs) == 1 + 6 + 18 and {r.info.status for r in runs} == {"FINISHED"}

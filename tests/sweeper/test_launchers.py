"""End-to-end: product and chain sweeps under Hydra's joblib, submitit and Ray launchers.

The test app runs as a subprocess (the sweeper), each test in a fresh folder
with its own stores. Every job logs its score twice to the active MLflow run
(``log_metric=my_loss``: score + 100, then score) and appends ``start`` and
``end`` records with its pid to a file (``record=...``), the app's own account
of which process ran it and when. For each launcher the test checks that every
job's trial was claimed and finished by the job's own process (its
``ivory:beat`` pid is the pid the app recorded, the app ran between the
trial's start and completion), that the job's own ``mlflow.log_metric`` calls
landed in its child run, and that nothing is left RUNNING in either store, nor
any process of the sweep alive.

Ray starts a local instance per sweep, on 127.0.0.1 only: its temp dir must be
short (Ray's Unix socket paths are limited to 107 bytes, too short for
pytest's tmp_path), and the dashboard, usage stats and token authentication
(which writes ``~/.ray/auth_token``) are turned off (see ``RAY_ENV``).

The last test runs a chain sweep whose Optuna storage is a fresh PostgreSQL
database and whose tracking server is a real ``mlflow server`` backed by
PostgreSQL (tests/mlflow_server.py), and reads everything back from both.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from conftest import APPS, AppRun, is_sweep_study
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from processes import cmdline, pids_mentioning, still_alive

from ivory_hydra.stores.format import BEAT, StudyAttr, TrialAttr

pytestmark = pytest.mark.slow

APP = APPS / "sweep" / "app.py"
HOST = socket.gethostname()
PENALTY = {"small": 0.5, "large": 0.0}
METRIC = "my_loss"
HYDRA_FILES = [".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"]

JOBLIB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
SUBMITIT = ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10")

# A one-batch product over a range and a config group: 4 jobs.
PRODUCT = ("a=1,2", "model=small,large")
PRODUCT_JOBS = [(1, 0.0, "small"), (1, 0.0, "large"), (2, 0.0, "small"), (2, 0.0, "large")]
# A chain: step 0 runs a=1..3 (b=0), a=2 wins; step 1 runs b=0,1 at a=2.
CHAIN = ("hydra.sweeper.mode=chain", "a=1-3", "b=0,1")
CHAIN_JOBS = [(1, 0.0, "small"), (2, 0.0, "small"), (3, 0.0, "small")]
CHAIN_JOBS += [(2, 0.0, "small"), (2, 1.0, "small")]


def score(a: int, b: float, model: str) -> float:
    """The score the test app returns (and logs) for a job."""
    return (a - 2) ** 2 + b + PENALTY[model]


# ---------------------------------------------------------------- running a sweep


@dataclass
class Sweep:
    """A finished sweep: its output, the sweeper's pid and where it wrote."""

    run: AppRun
    pid: int
    cwd: Path
    seconds: float

    @property
    def records(self) -> list[dict]:
        path = self.cwd / "records.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]


def run_sweep(cwd: Path, *args: str, env: dict | None = None, timeout: float = 600) -> Sweep:
    """Run the sweep app with ``-m`` in ``cwd``; the sweeper's pid is kept.

    Every job records itself in ``cwd/records.jsonl`` and logs ``my_loss``;
    the jobs' folders are ``cwd/out/<n>``. The sweeper runs in its own
    process group, killed whole if it overruns ``timeout``.
    """
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    command = [
        sys.executable,
        str(APP),
        "-m",
        *args,
        f"log_metric={METRIC}",
        f"record={cwd / 'records.jsonl'}",
        "hydra.sweep.dir=out",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"the sweep ran over {timeout} s:\n{(stdout + stderr)[-6000:]}"
        ) from None
    return Sweep(AppRun(proc.returncode, stdout, stderr), proc.pid, cwd, time.monotonic() - started)


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template):
    """A fresh (already migrated) MLflow store, ./mlflow.db in the sweep's cwd."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


# ---------------------------------------------------------------- processes


# ---------------------------------------------------------------- reading the stores


def load_study(storage: str) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    [name] = [
        s.study_name
        for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
        if is_sweep_study(s.study_name)
    ]
    return optuna.load_study(study_name=name, storage=storage)


def job_of(params: dict) -> tuple[int, float, str]:
    """(a, b, model) of a trial's params (the config's defaults where not swept)."""
    return int(params["a"]), float(params.get("b", 0.0)), str(params.get("model", "small"))


def local_time(timestamp: float) -> datetime.datetime:
    """A time.time() as Optuna stores times: naive local time."""
    return datetime.datetime.fromtimestamp(timestamp)


def check_trials(sweep: Sweep, study: optuna.Study, jobs: Sequence[tuple]) -> list[int]:
    """Every trial COMPLETE with its score, run by its job's own process; the job pids."""
    trials = study.trials
    assert [job_of(t.params) for t in trials] == list(jobs)
    assert [t.state.name for t in trials] == ["COMPLETE"] * len(jobs)
    assert [t.value for t in trials] == [score(*job) for job in jobs]
    records = sweep.records
    ends = [r for r in records if r["event"] == "end"]
    assert len(ends) == len(jobs), records  # each job ran once
    slack = datetime.timedelta(milliseconds=5)
    pids = []
    for trial in trials:
        where = f"trial {trial.number}"
        assert trial.datetime_start is not None and trial.datetime_complete is not None, where
        assert trial.datetime_start <= trial.datetime_complete, where
        beat = trial.system_attrs[BEAT]
        assert beat["host"] == HOST, where
        assert beat["pid"] != sweep.pid, f"{where} was run by the sweeper's process"
        # The app ran, in the process that claimed the trial, between the
        # trial's start (its claim) and its completion (its own record).
        job = job_of(trial.params)
        ran = [
            r
            for r in ends
            if (r["a"], float(r["b"]), r["model"]) == job
            and r["pid"] == beat["pid"]
            and trial.datetime_start - slack <= local_time(r["start"])
            and local_time(r["end"]) <= trial.datetime_complete + slack
        ]
        assert ran, f"{where}: no record of {job} in pid {beat['pid']}: {ends}"
        attrs = trial.user_attrs
        assert attrs[TrialAttr.RUN_NAME] == f"run#{trial.number}"
        assert attrs[TrialAttr.SLOT].startswith(f"{attrs[TrialAttr.STEP]}.")
        assert attrs[TrialAttr.OUTPUT_DIR] == str(sweep.cwd / "out" / str(trial.number))
        assert Path(attrs[TrialAttr.OUTPUT_DIR], ".hydra", "config.yaml").is_file()
        pids.append(beat["pid"])
    # the jobs' processes are gone with the sweep
    left = still_alive(pids, timeout=20)
    assert not left, f"job processes alive after the sweep: {[(p, cmdline(p)) for p in left]}"
    return pids


def check_chain_decision(study: optuna.Study) -> None:
    """Step 0 chose a=2 (score 0.5); step 1 ran at a=2, and chose b=0."""
    decisions = study.user_attrs[StudyAttr.DECISIONS]
    assert decisions["a"]["value"] == 2 and decisions["a"]["run"] == "run#1"
    assert decisions["b"]["value"] == 0
    second = [t for t in study.trials if t.user_attrs[TrialAttr.STEP] == 1]
    assert [t.params["a"] for t in second] == [2, 2]
    assert all("a=2" in t.user_attrs[TrialAttr.OVERRIDES].split() for t in second)


def check_runs(uri: str, study: optuna.Study, experiment: str = "app") -> MlflowClient:
    """One FINISHED parent; per trial one FINISHED child holding the job's own metric history."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_id: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert parent.info.status == "FINISHED"
    assert parent.info.run_id == study.user_attrs[StudyAttr.PARENT_RUN]
    assert len(children) == len(study.trials)
    for trial in study.trials:
        child = children[trial.user_attrs[TrialAttr.MLFLOW_RUN]]
        where = f"{child.info.run_name} (trial {trial.number})"
        assert child.info.run_name == trial.user_attrs[TrialAttr.RUN_NAME], where
        assert child.info.status == "FINISHED", where
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id, where
        assert child.data.tags["ivory.trial_number"] == str(trial.number), where
        assert child.data.metrics["score"] == trial.value, where
        history = client.get_metric_history(child.info.run_id, METRIC)
        assert sorted(m.value for m in history) == [trial.value, trial.value + 100], where
        first, then = sorted(history, key=lambda m: m.value, reverse=True)
        assert first.timestamp <= then.timestamp, where  # logged in that order
        artifacts = client.list_artifacts(child.info.run_id, ".hydra")
        assert sorted(a.path for a in artifacts) == HYDRA_FILES, where
    assert METRIC not in parent.data.metrics
    return client


def check_sweep(sweep: Sweep, jobs: Sequence[tuple], mlflow_uri: str) -> list[int]:
    """All the checks every launcher passes; returns the pid that ran each trial."""
    assert sweep.run.returncode == 0, sweep.run.output[-6000:]
    study = load_study(f"sqlite:///{sweep.cwd}/optuna.db")
    pids = check_trials(sweep, study, jobs)
    if len(set(jobs)) < len(jobs):  # the chain
        check_chain_decision(study)
    check_runs(mlflow_uri, study)
    return pids


# ---------------------------------------------------------------- joblib and submitit


@pytest.mark.parametrize(
    "plan, jobs", [(PRODUCT, PRODUCT_JOBS), (CHAIN, CHAIN_JOBS)], ids=["product", "chain"]
)
def test_joblib(tmp_path, mlflow_db, plan, jobs):
    sweep = run_sweep(tmp_path, *JOBLIB, *plan)
    pids = check_sweep(sweep, jobs, mlflow_db)
    # loky's workers, two at most (n_jobs=2), none of them the sweeper
    assert len(set(pids)) <= 2, pids


@pytest.mark.parametrize(
    "plan, jobs", [(PRODUCT, PRODUCT_JOBS), (CHAIN, CHAIN_JOBS)], ids=["product", "chain"]
)
def test_submitit_local(tmp_path, mlflow_db, plan, jobs):
    sweep = run_sweep(tmp_path, *SUBMITIT, *plan)
    pids = check_sweep(sweep, jobs, mlflow_db)
    assert len(set(pids)) == len(jobs), pids  # a process of its own for every job
    assert list((tmp_path / "out" / ".submitit").rglob("*_submitted.pkl"))


# ---------------------------------------------------------------- Ray


@pytest.fixture
def ray_dir():
    """A short temp dir for Ray's session (its socket paths must fit in 107 bytes).

    Afterwards no process of that Ray instance may be alive; any that is gets
    killed (by pid) so that it cannot disturb later tests, and the test fails.
    """
    path = Path(tempfile.mkdtemp(prefix="ivray-", dir="/tmp"))
    leftovers: list[tuple[int, str]] = []
    try:
        yield path
        for pid in still_alive(pids_mentioning(str(path)), timeout=20):
            leftovers.append((pid, cmdline(pid)))
    finally:
        for pid in pids_mentioning(str(path)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, f"Ray processes alive after the sweep: {leftovers}"


def ray_launcher(ray_dir: Path) -> tuple[str, ...]:
    return (
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
        f"+hydra.launcher.ray.init._temp_dir={ray_dir}",
    )


RAY_ENV = {
    "RAY_DISABLE_USAGE_STATS": "1",  # no prompt, nothing sent anywhere
    "RAY_AUTH_MODE": "disabled",  # else Ray writes a token into ~/.ray
    # Ray's local (Windows/macOS) mode, on Linux too: every Ray process listens
    # on and talks to 127.0.0.1, not the machine's network address.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # ephemeral ports for the metrics servers (fixed 44217 and 44227 by
    # default), so that two Ray instances on the machine do not collide
    "AUTOSCALER_METRIC_PORT": "0",
    "DASHBOARD_METRIC_PORT": "0",
}


@pytest.mark.ray
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="hydra-ray-launcher is not installed",
)
@pytest.mark.parametrize(
    "plan, jobs", [(PRODUCT, PRODUCT_JOBS), (CHAIN, CHAIN_JOBS)], ids=["product", "chain"]
)
def test_ray(tmp_path, mlflow_db, ray_dir, plan, jobs):
    sweep = run_sweep(tmp_path, *ray_launcher(ray_dir), *plan, env=RAY_ENV)
    assert "Started a local Ray instance" in sweep.run.output, sweep.run.output[-6000:]
    check_sweep(sweep, jobs, mlflow_db)  # Ray's workers ran the jobs, not the sweeper
    if plan is CHAIN:  # one Ray instance for both batches
        assert sweep.run.output.count("Started a local Ray instance") == 1
        assert "Ray is already running" in sweep.run.output


# ---------------------------------------------------------------- PostgreSQL everywhere


@pytest.mark.postgres
@pytest.mark.mlflow_server
def test_chain_on_postgresql_and_an_mlflow_server_backed_by_postgresql(
    tmp_path, postgres_url, mlflow_pg_server
):
    from postgres_server import PASSWORD, fresh_database

    storage = fresh_database(postgres_url)
    experiment = f"pg-{tmp_path.name}"
    sweep = run_sweep(
        tmp_path,
        *JOBLIB,
        "hydra.sweeper.mode=chain",
        "a=1-3",
        "model=small,large",
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.mlflow.tracking_uri={mlflow_pg_server.url}",
        f"hydra.sweeper.mlflow.experiment_name={experiment}",
    )
    assert sweep.run.returncode == 0, sweep.run.output[-6000:]
    assert PASSWORD not in sweep.run.output
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "optuna.db").exists()
    # step 0: a=1..3 (small), a=2 wins; step 1: model=small,large at a=2, large wins
    jobs = [(1, 0.0, "small"), (2, 0.0, "small"), (3, 0.0, "small")]
    jobs += [(2, 0.0, "small"), (2, 0.0, "large")]
    study = load_study(storage)
    check_trials(sweep, study, jobs)
    decisions = study.user_attrs[StudyAttr.DECISIONS]
    assert (decisions["a"]["value"], decisions["model"]["value"]) == (2, "large")
    assert study.best_trial.user_attrs[TrialAttr.RUN_NAME] == "run#4"

    client = check_runs(mlflow_pg_server.url, study, experiment)
    exp = client.get_experiment_by_name(experiment)
    assert exp.artifact_location.startswith("mlflow-artifacts:/")
    parent = client.get_run(study.user_attrs[StudyAttr.PARENT_RUN])
    assert parent.data.tags["ivory.best_run"] == "run#4"
    assert parent.data.metrics["best_score"] == 0.0
    assert parent.data.tags["ivory.storage"].startswith("postgresql://ivory:***@127.0.0.1")
    assert "results.yaml" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    # a job's .hydra folder, uploaded over HTTP, read back from the server
    best = study.best_trial
    config = client.download_artifacts(
        best.user_attrs[TrialAttr.MLFLOW_RUN], ".hydra/config.yaml", str(tmp_path / "down")
    )
    text = Path(config).read_text()
    assert "a: 2" in text and "name: large" in text
    # ... and kept in the server's artifact folder, <experiment id>/<run id>/artifacts/
    run_id = best.user_attrs[TrialAttr.MLFLOW_RUN]
    kept = mlflow_pg_server.artifacts / exp.experiment_id / run_id / "artifacts" / ".hydra"
    assert (kept / "config.yaml").read_text() == text

    # The runs really live in the server's PostgreSQL database.
    import psycopg

    with psycopg.connect(mlflow_pg_server.backend_store_uri) as conn:
        rows = conn.execute(
            "SELECT r.name, r.status FROM runs r JOIN experiments e"
            " ON r.experiment_id = e.experiment_id WHERE e.name = %s",
            (experiment,),
        ).fetchall()
        values = conn.execute(
            "SELECT m.value FROM metrics m JOIN runs r ON m.run_uuid = r.run_uuid"
            " JOIN experiments e ON r.experiment_id = e.experiment_id"
            " WHERE e.name = %s AND r.name = 'run#4' AND m.key = %s",
            (experiment, METRIC),
        ).fetchall()
    names = ["task#0"] + [f"run#{n}" for n in range(5)]
    assert sorted(rows) == sorted((name, "FINISHED") for name in names)
    assert sorted(v for (v,) in values) == [0.0, 100.0]

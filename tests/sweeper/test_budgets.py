"""Budgets end to end: ``timeout`` and ``max_failures`` through real apps.

Each sweep runs as a real process with both stores (SQLite, or a journal file
shared by two workers; MLflow from a migrated template). The app records when
each job starts and ends; the checks read that record, the sweep's output and
``results.yaml``, then run the same command again (and, if a timeout cuts it
again, once more without it) and check both stores with :func:`convergence.check_converged`.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import AppRun, run_app, start_sweep
from convergence import check_converged, only_study, records

pytestmark = pytest.mark.slow

STOPPED = re.compile(r"^Stopped: (.+); (\d+) jobs? left \(the same command resumes them\)$", re.M)
BATCH = "hydra.sweeper.max_batch_size"
#: Hydra's log line of the sweep's start (its timeout counts from a moment before it).
SWEEP_START = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]\[HYDRA\] Ivory sweeper:", re.M
)


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def sweep_started(output: str) -> float:
    """When the sweep's first line was logged (local time, to the millisecond)."""
    found = SWEEP_START.search(output)
    assert found, output
    return time.mktime(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + int(found[2]) / 1000


def results_of(result: AppRun, cwd: Path, name: str) -> dict:
    assert f"{name}/results.yaml" in result.output, result.output
    return yaml.safe_load((cwd / name / "results.yaml").read_text())


def given_back(url: str) -> list[str]:
    """The runs a budget kept from starting (their trials say so)."""
    return [
        t.user_attrs["run_name"]
        for t in only_study(url).trials
        if t.user_attrs.get("error") == "BudgetSpent"
    ]


def resume(cwd: Path, args: tuple[str, ...], name: str, env: dict | None = None) -> AppRun:
    """Run the same command again: it ends well and runs at least one job."""
    record = cwd / "jobs.jsonl"
    before = len(records(record, "start"))
    again = run_app(cwd, *args, f"hydra.sweep.dir={name}", env=env)
    assert again.returncode == 0, again.output
    assert len(records(record, "start")) > before, again.output
    return again


@pytest.mark.parametrize(
    ("launcher", "jobs", "timeout"),
    [
        ((), 8, 12),
        (("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"{BATCH}=24"), 24, 20),
    ],
    ids=["basic", "joblib-queued"],
)
def test_a_timeout_stops_the_sweep_and_the_same_command_resumes_the_rest(
    tmp_path, mlflow_db, launcher, jobs, timeout
):
    """Jobs of 2 s against a timeout that cuts the sweep: no job starts after it (under
    joblib, queued jobs of the batch are given back), exit 0, the summary says how many
    jobs are left, and the same command runs exactly the rest."""
    record = tmp_path / "jobs.jsonl"
    args = (*launcher, f"a=0-{jobs - 1}", "sleep=2", f"record={record}")
    budget = (*args, f"hydra.sweeper.timeout={timeout}")
    first = run_app(tmp_path, *budget, "hydra.sweep.dir=first")
    assert first.returncode == 0, first.output
    started = records(record, "start")
    deadline = sweep_started(first.output) + timeout + 0.001
    late = [(e["a"], e["start"] - deadline) for e in started if e["start"] >= deadline]
    assert not late, f"jobs started after the timeout: {late}"
    ended = len(records(record))
    assert 1 <= ended < jobs, first.output
    [(reason, left)] = STOPPED.findall(first.stdout)
    assert reason == f"timeout={timeout} s passed" and int(left) == jobs - ended
    results = results_of(first, tmp_path, "first")
    assert results["stopped_by"] == {"setting": "timeout", "reason": reason, "left": jobs - ended}
    assert results["finished"] is False and results["failed"] == []
    url = f"sqlite:///{tmp_path}/optuna.db"
    if launcher:  # the batch of 24 outran the deadline in joblib's queue
        assert given_back(url), first.output
        assert "not started: timeout" in first.output

    again = resume(tmp_path, budget, "again")  # the same command resumes
    if STOPPED.search(again.stdout):  # cut again: the rest without the timeout
        assert not STOPPED.search(resume(tmp_path, args, "rest").stdout)
    starts = Counter(e["a"] for e in records(record, "start"))
    assert starts == Counter(range(jobs)), starts  # every job started once: none twice
    check_converged(url, mlflow_db, record, range(jobs))


def test_a_job_that_waited_for_a_device_past_the_timeout_does_not_start(tmp_path, mlflow_db):
    """One device, three joblib workers, jobs of 3 s: the jobs waiting for the device
    check the timeout once they hold it, so none starts after it; the same command
    runs the rest."""
    record = tmp_path / "jobs.jsonl"
    args = (
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=3",
        "a=0-5",
        "sleep=3",
        f"record={record}",
        "hydra.sweeper.devices=[0]",
    )
    timeout = 14  # room for a slow first start (MLflow opened in a fresh joblib worker)
    first = run_app(tmp_path, *args, f"hydra.sweeper.timeout={timeout}", "hydra.sweep.dir=first")
    assert first.returncode == 0, first.output
    deadline = sweep_started(first.output) + timeout + 0.001
    started = records(record, "start")
    late = [(e["a"], e["start"] - deadline) for e in started if e["start"] >= deadline]
    assert not late, f"jobs started after the timeout: {late}"
    assert 1 <= len(records(record)) < 6, first.output
    assert STOPPED.search(first.stdout), first.output

    resume(tmp_path, args, "rest")
    starts = Counter(e["a"] for e in records(record, "start"))
    assert starts == Counter(range(6)), starts
    check_converged(f"sqlite:///{tmp_path}/optuna.db", mlflow_db, record, range(6))


@pytest.mark.parametrize("limit", [0, 2])
def test_max_failures_stops_the_sweep_and_the_rest_runs_once_fixed(tmp_path, mlflow_db, limit):
    """From a=4 on, jobs fail: the limit-th failure (0: the first) stops the sweep (no job starts
    after it), the exit is non-zero with the failures' reasons, and once the failures
    are fixed the same command runs the rest, with a fresh budget."""
    record = tmp_path / "jobs.jsonl"
    args = ("a=0-11", f"record={record}", f"hydra.sweeper.max_failures={limit}")
    failing = {"FAIL_AT": "4,5,6,7,8"}
    first = run_app(tmp_path, *args, "hydra.sweep.dir=first", env=failing)
    assert first.returncode == 1, first.output
    stopping = max(limit, 1)
    assert [e["a"] for e in records(record, "start")] == list(range(4 + stopping))
    jobs = "1 job" if stopping == 1 else f"{stopping} jobs"
    [(reason, left)] = STOPPED.findall(first.stdout)
    assert reason == f"max_failures={limit}: {jobs} failed" and int(left) == 12 - 4
    reasons = re.findall(
        r"^  run#\d+ +RuntimeError: planned failure at a=(\d+)", first.stdout, re.M
    )
    assert reasons == [str(a) for a in range(4, 4 + stopping)], first.stdout
    assert f"hydra.sweeper.max_failures={limit}: {jobs} failed, the sweep stopped" in first.stderr
    results = results_of(first, tmp_path, "first")
    assert results["stopped_by"]["setting"] == "max_failures"
    assert len(results["failed"]) == stopping

    assert not STOPPED.search(resume(tmp_path, args, "fixed").stdout)  # with a fresh budget
    ends = Counter(e["a"] for e in records(record))
    assert ends == Counter(range(12))  # the jobs that completed did not run again
    check_converged(f"sqlite:///{tmp_path}/optuna.db", mlflow_db, record, range(12))


def test_max_failures_gives_back_the_jobs_queued_in_joblib(tmp_path, mlflow_db):
    """A batch of 12 behind joblib's 2 workers: once a job failed (max_failures=0), the
    jobs still queued read the count in the ledger and do not start."""
    record = tmp_path / "jobs.jsonl"
    joblib = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"{BATCH}=12")
    args = (*joblib, "a=0-11", "sleep=0.5", f"record={record}", "hydra.sweeper.max_failures=0")
    first = run_app(tmp_path, *args, "hydra.sweep.dir=first", env={"FAIL_AT": "2"})
    assert first.returncode == 1, first.output
    assert "Stopped: max_failures=0: 1 job failed" in first.stdout
    started = records(record, "start")
    [failing] = [e for e in started if e["a"] == 2]
    counted = failing["start"] + 0.5  # it failed after its sleep
    late = [e["a"] for e in started if e["start"] > counted + 1.0]
    assert not late, f"jobs started after the failure: {late}"
    url = f"sqlite:///{tmp_path}/optuna.db"
    assert given_back(url) and len(started) < 12
    assert "not started: max_failures=0: 1 job failed" in first.output

    assert not STOPPED.search(resume(tmp_path, args, "fixed").stdout)
    assert Counter(e["a"] for e in records(record)) == Counter(range(12))
    check_converged(url, mlflow_db, record, range(12))


# ------------------------------------------------------------------ workers


@pytest.fixture(params=["journal", "postgresql"])
def shared_storage(request, tmp_path):
    if request.param == "journal":
        return str(tmp_path / "sweep.journal")
    from postgres_server import fresh_database

    return fresh_database(request.getfixturevalue("postgres_url"))


def test_two_workers_share_one_failure_budget(tmp_path, mlflow_db, shared_storage):
    """Two workers of one sweep: the failure budget counts both workers' failures, so
    both stop once the sweep (not each worker) had max_failures; a rerun
    after the fix starts with a fresh budget and runs the rest."""
    record = tmp_path / "jobs.jsonl"
    args = (
        "a=0-11",
        "sleep=1",
        f"record={record}",
        f"hydra.sweeper.storage={shared_storage}",
        "hydra.sweeper.max_failures=2",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=6",
    )
    workers = [start_sweep(tmp_path, f"w{i}", *args, env={"FAIL_AT": "3,4"}) for i in range(2)]
    codes = [w.wait(timeout=300) for w in workers]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert codes == [1, 1], logs
    for log in logs:  # each stopped on the sweep's count, whoever's failures they were
        assert "max_failures=2: 2 jobs failed: no new job starts" in log, log
    started = records(record, "start")
    failures = [e for e in started if e["a"] in (3, 4)]
    assert len(failures) == 2 and {e["pid"] for e in started} == {w.pid for w in workers}
    counted = max(e["start"] for e in failures) + 1.0  # each failed after its 1 s sleep
    late = [e["a"] for e in started if e["start"] > counted + 1.0]
    assert not late, f"jobs started after the failure budget was spent: {late}"
    assert len(started) < 12

    assert not STOPPED.search(resume(tmp_path, args, "fixed").stdout)
    check_converged(shared_storage, mlflow_db, record, range(12))


def test_a_timeout_is_each_workers_own_and_its_work_goes_to_the_others(tmp_path, mlflow_db):
    """A worker whose timeout passed starts no job and leaves; the worker without one
    runs the rest, once each, and closes the sweep as finished."""
    record = tmp_path / "jobs.jsonl"
    storage = str(tmp_path / "sweep.journal")
    args = ("a=0-9", "sleep=1", f"record={record}", f"hydra.sweeper.storage={storage}")
    short = start_sweep(tmp_path, "w0", *args, "hydra.sweeper.timeout=4", env={})
    other = start_sweep(tmp_path, "w1", *args, env={})
    codes = [short.wait(timeout=300), other.wait(timeout=300)]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    assert "timeout=4 s passed: no new job starts" in logs[0], logs[0]
    deadline = sweep_started(logs[0]) + 4 + 0.001
    late = [
        e["a"] for e in records(record, "start") if e["pid"] == short.pid and e["start"] >= deadline
    ]
    assert not late, f"jobs the worker started after its timeout: {late}"
    assert Counter(e["a"] for e in records(record, "start")) == Counter(range(10))
    assert "task#0: 10 jobs, 10 complete" in logs[1] and "Stopped:" not in logs[1]
    check_converged(storage, mlflow_db, record, range(10))

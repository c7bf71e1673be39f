"""Recovery converges: compound faults and outages end with both stores complete and agreeing.

The probes of issue 15, each through real processes: a worker killed while it
takes over a dead worker's jobs, workers joining a live sweep, PostgreSQL
restarting under two workers, an MLflow server gone for longer than its
retries, and an MLflow store left behind by a process that died; and workers
rerunning a chain whose decided step had a failed job. Each ends with
:func:`convergence.check_converged`.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import run_app, start_sweep
from convergence import check_converged, only_study, records
from mlflow.tracking import MlflowClient

from ivory_hydra.stores.format import StudyAttr, Tag, TrialAttr

pytestmark = pytest.mark.slow

LIVENESS = ("hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=6")


def wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def storage(shared_storage):
    return shared_storage


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def test_a_worker_killed_while_taking_over_a_dead_workers_jobs_loses_nothing(
    tmp_path, storage, mlflow_db
):
    """Kill worker A mid-job, then kill the worker that takes A's jobs over as soon as
    it says so: the third worker runs every job left, and closes the sweep."""
    record = tmp_path / "jobs.jsonl"
    args = (f"hydra.sweeper.storage={storage}", f"record={record}", "a=0-11", "sleep=2", *LIVENESS)
    workers = [start_sweep(tmp_path, f"w{i}", *args) for i in range(3)]

    def busy_after_a_job() -> list[subprocess.Popen]:
        started = [e["pid"] for e in records(record, "start")]
        ended = [e["pid"] for e in records(record)]
        return [w for w in workers if 0 < ended.count(w.pid) < started.count(w.pid)]

    wait_for(busy_after_a_job, "a worker in the middle of its second job")
    first = busy_after_a_job()[0]
    first.send_signal(signal.SIGKILL)
    others = [w for w in workers if w is not first]

    def taking_over() -> list[subprocess.Popen]:
        logs = {w.pid: (tmp_path / f"w{workers.index(w)}.log").read_text() for w in others}
        return [w for w in others if "A worker of this sweep stopped" in logs[w.pid]]

    wait_for(taking_over, "a worker taking over the dead one's jobs")
    second = taking_over()[0]
    second.send_signal(signal.SIGKILL)
    [third] = [w for w in others if w is not second]
    assert third.wait(timeout=240) == 0, (tmp_path / f"w{workers.index(third)}.log").read_text()
    first.wait(timeout=30), second.wait(timeout=30)
    check_converged(storage, mlflow_db, record, range(12), {first.pid, second.pid})


def test_workers_joining_a_live_sweep_end_no_one_elses_mlflow_run(tmp_path, mlflow_db):
    """Six copies started a little apart: no run is ended KILLED while its trial completes."""
    storage = str(tmp_path / "sweep.journal")
    record = tmp_path / "jobs.jsonl"
    args = (f"hydra.sweeper.storage={storage}", f"record={record}", "a=0-29", "sleep=0.2")
    workers = []
    for i in range(6):
        workers.append(start_sweep(tmp_path, f"w{i}", *args, *LIVENESS))
        time.sleep(0.4)
    assert [w.wait(timeout=240) for w in workers] == [0] * 6
    check_converged(storage, mlflow_db, record, range(30))


def test_a_rerun_of_a_chain_runs_the_failed_job_of_a_decided_step_again(
    tmp_path, storage, mlflow_db
):
    """Two workers run a chain whose would-be winner of step a (a=2) fails: step a is
    decided without it (failed runs never win: a=1) and step b runs at a=1. The same
    command again on two workers, the failure fixed, runs exactly that job again; the
    decision stands and the sweep closes finished, as one sweeper on SQLite does."""
    record = tmp_path / "jobs.jsonl"
    chain = ("hydra.sweeper.mode=chain", "a=0-3", "b=0.5,1.0", "sleep=0.2")
    args = (f"hydra.sweeper.storage={storage}", f"record={record}", *chain, *LIVENESS)
    first = [start_sweep(tmp_path, f"w{i}", *args, env={"FAIL_AT": "2"}) for i in range(2)]
    codes = [w.wait(timeout=240) for w in first]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert 1 in codes and set(codes) <= {0, 1}, logs
    assert all("Chain: a is fixed at 1\n" in log for log in logs), logs
    ran = sorted((e["a"], e["b"]) for e in records(record))
    assert ran == [(0, 0.0), (1, 0.0), (1, 0.5), (1, 1.0), (3, 0.0)]  # a=2 failed

    rerun = [start_sweep(tmp_path, f"r{i}", *args) for i in range(2)]  # FAIL_AT dropped
    codes = [w.wait(timeout=240) for w in rerun]
    logs = [(tmp_path / f"r{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs
    assert [(e["a"], e["b"]) for e in records(record)][len(ran) :] == [(2, 0.0)]
    counts = [int(re.search(r"This worker ran (\d+) job", log)[1]) for log in logs]
    assert sum(counts) == 1, logs
    assert all("Chain: a is fixed at 1\n" in log for log in logs), logs
    jobs = [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (1, 0.5), (1, 1.0)]
    study = check_converged(storage, mlflow_db, record, jobs, key=("a", "b"))
    assert study.user_attrs[StudyAttr.DECISIONS]["a"]["value"] == 1  # made while a=2 failed
    assert [t.state.name for t in study.trials].count("FAIL") == 1


@pytest.mark.postgres
def test_a_postgresql_restart_is_waited_out_by_every_worker(tmp_path, mlflow_db):
    """PostgreSQL stops for about three seconds under two workers: both wait and go on;
    every job runs once and no trial fails for it."""
    from postgres_server import fresh_database, postgres_server

    with postgres_server() as server:
        storage = fresh_database(server.url)
        record = tmp_path / "jobs.jsonl"
        args = (f"hydra.sweeper.storage={storage}", f"record={record}", "a=0-19", "sleep=0.5")
        workers = [start_sweep(tmp_path, f"w{i}", *args, *LIVENESS) for i in range(2)]
        wait_for(lambda: len(records(record)) >= 4, "four jobs' ends")
        server.stop(mode="immediate")
        time.sleep(3)
        server.start()
        codes = [w.wait(timeout=240) for w in workers]
        logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
        assert codes == [0, 0], logs
        assert not any("Traceback" in log for log in logs), logs
        study = check_converged(storage, mlflow_db, record, range(20))
        assert {t.state.name for t in study.trials} == {"COMPLETE"}


@pytest.mark.mlflow_server
def test_an_mlflow_server_gone_past_its_retries_is_brought_in_line_by_the_rerun(tmp_path):
    """The MLflow server dies mid-sweep and stays away: the sweep still ends (the
    storage has every result); once it is back, the same command repairs MLflow."""
    from mlflow_server import mlflow_server

    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
    with mlflow_server(tmp_path / "mlflow") as server:
        record = tmp_path / "jobs.jsonl"
        args = (f"hydra.sweeper.mlflow.tracking_uri={server.url}", f"record={record}")
        sweep = start_sweep(tmp_path, "first", *args, "a=0-9", "sleep=0.3", env=quick)
        wait_for(lambda: len(records(record)) >= 3, "three jobs' ends")
        server.stop(kill=True)
        code = sweep.wait(timeout=240)
        log = (tmp_path / "first.log").read_text()
        assert code == 0, log
        assert "the mirror catches up" in log and "MLflow lags: run the same command again" in log
        study = only_study(f"sqlite:///{tmp_path}/optuna.db")
        assert study.user_attrs.get(StudyAttr.MIRROR_SYNCED) is False
        server.start()
        rerun = run_app(tmp_path, *args, "a=0-9", "sleep=0.3", "hydra.sweep.dir=again")
        assert rerun.returncode == 0, rerun.output
        assert "bringing MLflow in line" in rerun.output
        url = f"sqlite:///{tmp_path}/optuna.db"
        check_converged(url, server.url, record, range(10))


def finished_sweep(tmp_path: Path, jobs: str) -> tuple[Path, tuple[str, ...], str, Any]:
    """A sweep of ``jobs`` run to its end on SQLite: its record, args, storage and study."""
    record = tmp_path / "jobs.jsonl"
    args = (f"record={record}", jobs)
    first = run_app(tmp_path, *args, "hydra.sweep.dir=first")
    assert first.returncode == 0, first.output
    url = f"sqlite:///{tmp_path}/optuna.db"
    return record, args, url, only_study(url)


def test_a_rerun_repairs_runs_left_running_by_a_process_that_died(tmp_path, mlflow_db):
    """A process killed just after its jobs ended leaves runs RUNNING and the parent
    open: the next run of the command settles them from the trials."""
    record, args, url, study = finished_sweep(tmp_path, "a=0-4")
    # what a SIGKILL between the trials' ends and MLflow's leaves behind
    client = MlflowClient(mlflow_db)
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    for run in runs[:3]:
        client.update_run(run.info.run_id, status="RUNNING")
    study.set_user_attr(StudyAttr.MIRROR_SYNCED, False)
    before = len(records(record))
    again = run_app(tmp_path, *args, "hydra.sweep.dir=again")
    assert again.returncode == 0, again.output
    assert "bringing MLflow in line" in again.output
    assert len(records(record)) == before  # nothing ran again
    check_converged(url, mlflow_db, record, range(5))
    after = client.search_runs([runs[0].info.experiment_id])
    assert [p.info.status for p in after if Tag.PARENT not in p.data.tags] == ["FINISHED"]


def test_a_rerun_keeps_one_mlflow_run_per_trial_the_one_the_trial_names(tmp_path, mlflow_db):
    """Two runs for one trial (a create retried after its connection dropped, or a
    reaper's run beside the job's): the next run of the command deletes the extras,
    older or newer, and keeps the run the trial names."""
    record, args, url, study = finished_sweep(tmp_path, "a=0-2")
    trial = next(t for t in study.trials if t.number == 1)
    named = trial.user_attrs[TrialAttr.MLFLOW_RUN]
    client = MlflowClient(mlflow_db)
    original = client.get_run(named)
    experiment_id = original.info.experiment_id
    extras = [
        client.create_run(experiment_id, start_time=start, tags=original.data.tags).info.run_id
        for start in (original.info.start_time - 1000, original.info.start_time + 1000)
    ]
    for run_id in extras:
        client.set_terminated(run_id, "FINISHED")
    study.set_user_attr(StudyAttr.MIRROR_SYNCED, False)
    again = run_app(tmp_path, *args, "hydra.sweep.dir=again")
    assert again.returncode == 0, again.output
    for run_id in extras:
        assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.get_run(named).info.lifecycle_stage == "active"
    check_converged(url, mlflow_db, record, range(3))

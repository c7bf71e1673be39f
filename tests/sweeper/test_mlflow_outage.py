"""An MLflow store that is locked or gone does not slow the sweep; the rerun mends MLflow.

Whole sweeps of the test app, as a user runs them: the SQLite MLflow store
locked by another process across several jobs, and a real ``mlflow server``
killed mid-sweep (with MLflow's default HTTP retries) and started again.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import run_app
from convergence import check_converged, records

pytestmark = pytest.mark.slow

JOBS = 6
TIMEOUT = 2.0  # hydra.sweeper.mlflow.timeout in these sweeps
ARGS = [f"a=0-{JOBS - 1}", "sleep=0.3", f"hydra.sweeper.mlflow.timeout={TIMEOUT}"]
OUTAGE_LINES = ("cannot be reached", "MLflow lags")


def timed_sweep(cwd: Path, *args: str):
    start = time.monotonic()
    result = run_app(cwd, *ARGS, f"record={cwd / 'record.jsonl'}", *args)
    return result, time.monotonic() - start


def outage_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(t in line for t in OUTAGE_LINES)]


def check_quiet(result) -> None:
    """The sweep went on: no traceback, at most two lines about MLflow's outage."""
    assert result.returncode == 0, result.output
    assert "Traceback" not in result.output, result.output
    assert "database is locked" not in result.output, result.output
    lines = outage_lines(result.output)
    assert 1 <= len(lines) <= 2, lines
    assert "MLflow lags: run the same command again once" in result.output


def test_a_locked_sqlite_store_does_not_slow_the_sweep_and_the_rerun_mends_it(
    tmp_path, mlflow_template
):
    from sqlite_lock import sqlite_locked

    took = {}
    for name in ("off", "unlocked", "locked"):
        (tmp_path / name).mkdir()
        shutil.copy(mlflow_template, tmp_path / name / "mlflow.db")
    _, took["off"] = timed_sweep(tmp_path / "off", "hydra.sweeper.mlflow.enabled=false")
    _, took["unlocked"] = timed_sweep(tmp_path / "unlocked")
    locked = tmp_path / "locked"
    record = locked / "record.jsonl"
    # locked from the end of the first job until after the sweep (at most 3 minutes)
    with sqlite_locked(locked / "mlflow.db", when=(record, '"end"'), hold=180):
        result, took["locked"] = timed_sweep(locked)
    check_quiet(result)
    assert len(records(record)) == JOBS
    # the lock costs one timeout; MLflow's own import and store opening are the rest
    assert took["locked"] < took["unlocked"] + TIMEOUT + 5, took
    assert took["locked"] < took["off"] + TIMEOUT + 15, took
    again = run_app(locked, *ARGS, f"record={record}")  # the store is back
    assert again.returncode == 0 and "bringing MLflow in line" in again.output, again.output
    assert not outage_lines(again.output), again.output
    study = check_converged(
        f"sqlite:///{locked}/optuna.db", f"sqlite:///{locked}/mlflow.db", record, range(JOBS)
    )
    # the first job ended before the lock, the second may have learnt of it as it ended
    flags = [t.user_attrs.get("mirror_lags") for t in study.trials]
    assert flags[0] is None and flags[2:] == [True] * (JOBS - 2), flags
    _params_in_every_run(f"sqlite:///{locked}/mlflow.db", study)
    print(
        f"wall time of {JOBS} jobs of 0.3 s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in took.items())
    )


def _params_in_every_run(tracking_uri: str, study) -> None:
    from mlflow.tracking import MlflowClient

    from ivory_hydra.stores.format import Tag

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    params = {r.data.tags[Tag.TRIAL_NUMBER]: r.data.params for r in runs if r.data.params}
    expected = {str(t.number): {k: str(v) for k, v in t.params.items()} for t in study.trials}
    assert params == expected, params


@pytest.mark.mlflow_server
def test_a_tracking_server_killed_mid_sweep_is_caught_up_by_the_rerun(tmp_path, monkeypatch):
    from mlflow_server import mlflow_server

    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)  # MLflow's defaults: minutes of retries
    cwd = tmp_path / "sweep"
    cwd.mkdir()
    record = cwd / "record.jsonl"
    with mlflow_server(tmp_path / "server") as server:
        uri = f"hydra.sweeper.mlflow.tracking_uri={server.url}"

        def kill_after_first_job() -> None:
            while not records(record):
                time.sleep(0.02)
            server.stop(kill=True)

        killer = threading.Thread(target=kill_after_first_job, daemon=True)
        killer.start()
        result, took = timed_sweep(cwd, uri)
        killer.join(timeout=60)
        check_quiet(result)
        assert len(records(record)) == JOBS
        assert took < 60, took  # MLflow's own retries would take minutes per call
        server.start()  # back, on the same port with the same runs
        again = run_app(cwd, *ARGS, f"record={record}", uri)
        assert again.returncode == 0 and "bringing MLflow in line" in again.output, again.output
        study = check_converged(f"sqlite:///{cwd}/optuna.db", server.url, record, range(JOBS))
        _params_in_every_run(server.url, study)


def test_a_timeout_that_is_not_positive_fails_before_any_job(sweep, tmp_path):
    for value in ("0", "-1"):
        result = sweep("a=1-2", f"hydra.sweeper.mlflow.timeout={value}", mlflow=True)
        assert result.returncode != 0
        assert "hydra.sweeper.mlflow.timeout: must be a positive number of seconds" in (
            result.stderr
        ), result.output
        assert not result.run_lines and not (tmp_path / "optuna.db").exists()

"""End-to-end: bad input is refused before anything is written; failing jobs fail alone.

Real Hydra apps in subprocesses. Bad input is given with MLflow ON (its default
store, ``./mlflow.db``), so that both stores are checked to stay untouched.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import AppRun, run_app

pytestmark = pytest.mark.slow


def load_trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path}/optuna.db"
    [summary] = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).trials


def assert_refused_and_nothing_written(result: AppRun, cwd: Path) -> None:
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.stderr, result.stderr
    assert result.run_lines == [], result.stdout
    assert "Launching" not in result.output
    written = sorted(p.name for p in cwd.iterdir())
    assert not (cwd / "optuna.db").exists(), written
    assert not (cwd / "mlflow.db").exists(), written
    assert not list(cwd.glob("*.log")), written  # no journal storage either
    assert not (cwd / "multirun").exists(), written
    assert not (cwd / "mlruns").exists(), written


def end_of_output(stdout: str) -> list[str]:
    """The sweep's own summary, after the last job: from its ``task#K: N jobs`` line on."""
    lines = stdout.splitlines()
    first = next((i for i, line in enumerate(lines) if "] task#0: " in line), -1)
    assert first >= 0, stdout
    return lines[first:]


def free_closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ near-ranges


@pytest.mark.parametrize("value", ["1e-3_1e2:6.lg", "0-1:5.LOG", "nan-1"])
def test_a_value_that_is_almost_a_range_is_refused_with_a_hint_to_quote_it(tmp_path, value):
    result = run_app(tmp_path, f"a={value}")
    assert_refused_and_nothing_written(result, tmp_path)
    assert f"override 'a={value}': invalid range string '{value}'" in result.stderr
    assert f"To pass it as a literal string, quote it: a='{value}'" in result.stderr


def test_the_quoted_near_ranges_are_literal_strings(tmp_path):
    values = ["1e-3_1e2:6.lg", "0-1:5.LOG", "nan-1"]
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "a=1",
        "+tag=" + ",".join(f"'{v}'" for v in values),
    )
    assert result.returncode == 0, result.output
    assert result.run_lines == [f"[run#{i}] a=1 tag={v}" for i, v in enumerate(values)]
    trials = load_trials(tmp_path)
    assert [t.params for t in trials] == [{"a": 1, "tag": v} for v in values]
    assert [t.user_attrs["overrides"] for t in trials] == [f"a=1 +tag='{v}'" for v in values]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3


@pytest.mark.parametrize("value", ["1e-3_1e2:6.lg", "nan-1"])
def test_a_single_quoted_near_range_is_a_literal_string(tmp_path, value):
    result = run_app(tmp_path, "hydra.sweeper.mlflow.enabled=false", "a=1,2", f"+tag='{value}'")
    assert result.returncode == 0, result.output
    assert [t.params["tag"] for t in load_trials(tmp_path)] == [value, value]


# ------------------------------------------------------------------ unreachable stores


def test_an_unreachable_tracking_server_is_named_once_without_its_password(tmp_path):
    port = free_closed_port()
    started = time.monotonic()
    result = run_app(
        tmp_path,
        "a=1,2",
        f"hydra.sweeper.mlflow.tracking_uri=http://me:hunter2@127.0.0.1:{port}",
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"the check took {elapsed:.1f} s"
    assert_refused_and_nothing_written(result, tmp_path)
    named = [line for line in result.output.splitlines() if "hydra.sweeper.mlflow" in line]
    assert len(named) == 1, result.output
    assert named[0].startswith(
        f"hydra.sweeper.mlflow.tracking_uri=http://me:***@127.0.0.1:{port}: "
        "cannot reach this MLflow tracking store"
    ), named
    assert "hunter2" not in result.stdout
    assert "hunter2" not in result.stderr


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["hydra.sweeper.grace_period=5", "hydra.sweeper.heartbeat_interval=10"],
            "hydra.sweeper.grace_period: 5 s must be longer than heartbeat_interval (10 s)",
        ),
        (
            ["hydra.sweeper.grace_period=10", "hydra.sweeper.heartbeat_interval=10"],
            "hydra.sweeper.grace_period: 10 s must be longer than heartbeat_interval (10 s)",
        ),
        (
            ["hydra.sweeper.max_batch_size=0"],
            "hydra.sweeper.max_batch_size: must be positive or null, not 0",
        ),
        (
            ["hydra.sweeper.max_batch_size=-2"],
            "hydra.sweeper.max_batch_size: must be positive or null, not -2",
        ),
        (
            ["hydra.sweeper.heartbeat_interval=0"],
            "hydra.sweeper.heartbeat_interval: must be a positive number of seconds, not 0",
        ),
        (
            ["hydra.sweeper.timeout=0"],
            "hydra.sweeper.timeout: must be a positive number of seconds or null, not 0.0",
        ),
        (
            ["hydra.sweeper.timeout=-5"],
            "hydra.sweeper.timeout: must be a positive number of seconds or null, not -5.0",
        ),
        (
            ["hydra.sweeper.timeout=nan"],
            "hydra.sweeper.timeout: must be a positive number of seconds or null, not nan",
        ),
        (["hydra.sweeper.timeout=soon"], "Error merging override hydra.sweeper.timeout=soon"),
        (
            ["hydra.sweeper.max_failures=-1"],
            "hydra.sweeper.max_failures: must be a whole number >= 0 or null, not -1",
        ),
        (["hydra.sweeper.max_failures=1.5"], "Error merging override hydra.sweeper.max_failures"),
        (["hydra.sweeper.max_failures=all"], "Error merging override hydra.sweeper.max_failures"),
    ],
    ids=[
        "grace-below-interval",
        "grace-equal-interval",
        "batch-0",
        "batch-negative",
        "beat-0",
        "timeout-0",
        "timeout-negative",
        "timeout-nan",
        "timeout-text",
        "max-failures-negative",
        "max-failures-fraction",
        "max-failures-text",
    ],
)
def test_bad_settings_are_refused_before_any_job(tmp_path, args, message):
    result = run_app(tmp_path, "a=1,2", *args)
    assert_refused_and_nothing_written(result, tmp_path)
    assert message in result.stderr


# ------------------------------------------------------------------ failures during a sweep


@pytest.mark.parametrize(
    "launcher",
    [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]],
    ids=["basic", "joblib"],
)
def test_sys_exit_fails_that_job_only(tmp_path, launcher):
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        *launcher,
        "a=1-4",
        "exit_at=2",
        "hydra.sweep.dir=out",
    )
    assert result.returncode == 1, result.output
    assert len(result.run_lines) == 4
    trials = load_trials(tmp_path)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].params["a"] == 2
    assert trials[1].user_attrs["reason"] == "the job called sys.exit(3)"
    assert trials[1].user_attrs["error"] == "SystemExit"
    # (a-2)**2 + the small model's penalty 0.5
    assert [t.value for t in trials if t.value is not None] == [1.5, 1.5, 4.5]
    # The end of the output (after the last job) names the failed run and why it failed.
    error = tmp_path / "out" / "1" / "error.txt"
    summary = end_of_output(result.stdout)
    assert any("run#1" in line and "the job called sys.exit(3)" in line for line in summary), (
        "\n".join(summary)
    )
    assert str(error) in "\n".join(summary)
    assert "1 of 4 jobs failed: run#1 (job 1: a=2 exit_at=2)" in result.stderr
    assert "SystemExit: 3" in error.read_text()
    assert "Traceback" not in result.stderr


def test_a_failed_job_shows_its_error_and_traceback_file(tmp_path):
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "a=1-3",
        "fail_at=2",
        "hydra.sweep.dir=out",
    )
    assert result.returncode == 1, result.output
    error = tmp_path / "out" / "1" / "error.txt"
    # As it fails, the job says why and where its traceback is.
    assert (
        f"[run#1] failed: RuntimeError: planned failure at a=2 (traceback: {error})"
        in result.output
    )
    results = yaml.safe_load((tmp_path / "out" / "results.yaml").read_text())
    [failed] = results["failed"]
    assert failed["run"] == "run#1"
    assert failed["reason"] == "RuntimeError: planned failure at a=2"
    assert failed["traceback"] == str(error)
    assert results["runs"] == {"complete": 2, "fail": 1}
    text = Path(failed["traceback"]).read_text()
    assert "planned failure" in text
    assert text.startswith("Traceback (most recent call last)")
    assert not (tmp_path / "out" / "0" / "error.txt").exists()
    assert [t.state.name for t in load_trials(tmp_path)] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert load_trials(tmp_path)[1].user_attrs["traceback"] == str(error)

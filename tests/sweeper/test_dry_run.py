"""``hydra.sweeper.dry_run=true``: the preview prints what would run and writes nothing.

Real Hydra apps in subprocesses (tests/apps/sweep: score (a - 2)**2 + b +
model.penalty; ``fail_at`` makes the job with that ``a`` fail), real SQLite
Optuna and MLflow stores (MLflow on, at its default ./mlflow.db). Around each
dry run, every file and folder under the app's folder is compared (bytes and
modification times), and both stores are read back before and after.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import optuna
import pytest
from conftest import AppRun, run_app
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

DRY = "hydra.sweeper.dry_run=true"


def sweep(cwd: Path, *args: str, **kwargs) -> AppRun:
    return run_app(cwd, "hydra.sweep.dir=s", *args, **kwargs)


def files(cwd: Path) -> dict[str, tuple]:
    """Every file and folder under ``cwd``: its modification time, and a file's bytes."""
    found: dict[str, tuple] = {".": (cwd.stat().st_mtime_ns,)}
    for path in sorted(cwd.rglob("*")):
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        found[str(path.relative_to(cwd))] = (stat.st_mtime_ns, digest)
    return found


def stores(cwd: Path) -> tuple[list, list]:
    """What both stores hold: every trial (number, state, params, attributes, values) and
    every MLflow run (id, name, status, params, metrics, tags)."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{cwd}/optuna.db")
    try:
        trials = [
            (study.study_name, t.number, t.state.name, t.params, t.user_attrs, t.values)
            for study in storage.get_all_studies()
            for t in storage.get_all_trials(study._study_id)
        ]
    finally:
        storage.engine.dispose()
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = [
        (r.info.run_id, r.info.run_name, r.info.status, r.data.params, r.data.metrics, r.data.tags)
        for r in client.search_runs(experiments)
    ]
    return trials, sorted(runs)


def dry_run_changes_nothing(cwd: Path, *args: str) -> AppRun:
    """A dry run of ``args``, with both stores and every file checked unchanged."""
    before = stores(cwd)
    on_disk = files(cwd)
    time.sleep(0.01)  # a write would show in a modification time
    result = sweep(cwd, *args, DRY)
    assert result.returncode == 0, result.output
    assert files(cwd) == on_disk
    assert stores(cwd) == before
    return result


def launched(result: AppRun, cwd: Path) -> list[str]:
    """The overrides of each job that ``result`` ran, from its job folder (``s/<run>``):
    what Hydra composed the job from."""
    import yaml

    runs = [line.split("]", 1)[0].removeprefix("[run#") for line in result.run_lines]
    return [
        " ".join(yaml.safe_load((cwd / "s" / run / ".hydra/overrides.yaml").read_text()))
        for run in runs
    ]


def preview(result: AppRun) -> list[str]:
    """The preview's lines (stdout after its first line)."""
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Dry run"))
    return lines[start:]


@pytest.fixture
def cwd(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return tmp_path


# ------------------------------------------------------------------ a fresh sweep


def test_a_fresh_dry_run_prints_every_job_and_creates_nothing(tmp_path):
    result = sweep(tmp_path, "a=1-3", "model=small,large", "b=0.5", DRY)
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no sweep folder
    lines = preview(result)
    assert lines[1].endswith(f"in sqlite:///{tmp_path}/optuna.db: not created yet")
    assert lines[2:] == [
        "Product of 6 jobs, 6 to run:",
        "  #0  a=1 model=small b=0.5",
        "  #1  a=1 model=large b=0.5",
        "  #2  a=2 model=small b=0.5",
        "  #3  a=2 model=large b=0.5",
        "  #4  a=3 model=small b=0.5",
        "  #5  a=3 model=large b=0.5",
    ]
    assert result.run_lines == [] and "Launching" not in result.output

    real = sweep(
        tmp_path, "a=1-3", "model=small,large", "b=0.5", "hydra.sweeper.mlflow.enabled=false"
    )
    assert launched(real, tmp_path) == [line.split("  ")[2] for line in lines[3:]]


def test_a_fresh_chain_shows_its_first_step_and_the_steps_after_it(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.mode=chain", "model=small,large", "a=1-3", DRY)
    assert result.returncode == 0, result.output
    assert preview(result)[2:] == [
        "Chain (2 steps) of 5 jobs, 5 to run:",
        "Step 0, model: 2 jobs, 2 to run:",
        "  #0.0  model=small",
        "  #0.1  model=large",
        "Step 1, a: 3 jobs (1, 2, 3), each at the winners of the steps before it",
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_optimize_shows_n_trials_and_the_space(tmp_path):
    result = sweep(
        tmp_path,
        "hydra.sweeper.mode=optimize",
        "hydra.sweeper.n_trials=20",
        "a=0_4",
        "b=0.01-1.0.log",
        "model=small,large",
        "hydra.sweeper.params.arch='zip(+c=[1,2], +d=[x,y])'",
        DRY,
    )
    assert result.returncode == 0, result.output
    assert preview(result)[2:] == [
        "Optimize: 20 trials (n_trials), 0 done, 20 to sample (20 jobs)",
        "The sampler picks each trial's values of:",
        "  arch   c=1 d=x | c=2 d=y",  # a zipped dimension: its rows, one categorical
        "  a      int 0..4 step 1",
        "  b      float 0.01..1.0 log",
        "  model  small | large",
    ]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a half-done sweep


def test_a_dry_run_of_a_sweep_that_failed_on_one_job_shows_what_a_resume_runs(cwd):
    args = ("a=1-3", "b=0.5,1.5", "fail_at=2")
    failed = sweep(cwd, *args)
    assert failed.returncode == 1, failed.output  # jobs a=2 failed, the others finished
    result = dry_run_changes_nothing(cwd, *args)
    assert preview(result)[1].endswith(": 6 trials")
    assert preview(result)[2:] == [
        "Product of 6 jobs, 2 to run (4 finished, left out):",
        "  #2  a=2 b=0.5 fail_at=2  (runs again: run#2 failed)",
        "  #3  a=2 b=1.5 fail_at=2  (runs again: run#3 failed)",
        "Left out (finished): #0, #1, #4, #5",
    ]
    resumed = sweep(cwd, *args)  # the real resume runs exactly what the preview listed
    assert launched(resumed, cwd) == ["a=2 b=0.5 fail_at=2", "a=2 b=1.5 fail_at=2"]


def test_a_dry_run_of_a_chain_whose_first_step_is_decided_lists_the_next_one(cwd):
    args = ("hydra.sweeper.mode=chain", "model=small,large", "a=1-3", "fail_at=3")
    failed = sweep(cwd, *args)
    assert failed.returncode == 1, failed.output  # step 1's job a=3 failed
    result = dry_run_changes_nothing(cwd, *args)
    assert preview(result)[2:] == [
        "Chain (2 steps) of 5 jobs, 1 to run (4 finished, left out):",
        "Step 0, model: 2 jobs, decided: model=large (run#1, score 4)",
        "Step 1, a: 3 jobs, decided: a=2 (run#3, score 0), 1 to run:",  # the decision stands
        "  #1.2  model=large a=3 fail_at=3  (runs again: run#4 failed)",
        "Left out (finished): #0.0, #0.1, #1.0, #1.1",
    ]
    resumed = sweep(cwd, *args)  # the real resume runs exactly what the preview listed
    assert launched(resumed, cwd) == ["model=large a=3 fail_at=3"]


def test_a_dry_run_of_a_stopped_chain_lists_the_rest_of_its_current_step(cwd):
    args = ("hydra.sweeper.mode=chain", "model=small,large", "a=1-3")
    stopped = sweep(cwd, *args, env={"INTERRUPT_AT": "2"})  # Ctrl-C in step 1, at a=2
    assert stopped.returncode != 0, stopped.output
    result = dry_run_changes_nothing(cwd, *args)
    lines = preview(result)
    assert lines[2:] == [
        "Chain (2 steps) of 5 jobs, 2 to run (3 finished, left out):",
        "Step 0, model: 2 jobs, decided: model=large (run#1, score 4)",
        "Step 1, a: 3 jobs, 2 to run:",
        "  #1.1  model=large a=2  (runs again: run#3 failed)",
        "  #1.2  model=large a=3  (runs again: run#4 failed)",  # issued beside it, never started
        "Left out (finished): #0.0, #0.1, #1.0",
    ]
    resumed = sweep(cwd, *args)  # the real resume runs exactly what the preview listed
    assert launched(resumed, cwd) == ["model=large a=2", "model=large a=3"]


def test_a_dry_run_with_repeats_lists_each_missing_repeat(tmp_path):
    args = ("lr=0.1,0.01", "fold=0_2", "hydra.sweeper.repeat=[fold]")
    result = run_app(tmp_path, *args, DRY, app="repeats/app.py")
    assert result.returncode == 0, result.output
    assert preview(result)[2:] == [
        "Product of 6 jobs, 6 to run:",
        "  #0/0  lr=0.1 fold=0",
        "  #0/1  lr=0.1 fold=1",
        "  #0/2  lr=0.1 fold=2",
        "  #1/0  lr=0.01 fold=0",
        "  #1/1  lr=0.01 fold=1",
        "  #1/2  lr=0.01 fold=2",
    ]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a finished sweep


def test_a_dry_run_of_a_finished_sweep_runs_nothing_and_changes_nothing(cwd):
    args = ("a=1-3", "model=small,large")
    assert sweep(cwd, *args).returncode == 0
    result = dry_run_changes_nothing(cwd, *args)
    assert preview(result)[2:] == [
        "Product of 6 jobs, 0 to run (6 finished, left out):",
        "Left out (finished): #0, #1, #2, #3, #4, #5",
    ]


def test_a_dry_run_refuses_bad_input_as_a_real_run_does(tmp_path):
    result = sweep(tmp_path, "hydra.sweeper.params.arch='zip(model=[small,large], a=[1])'", DRY)
    assert result.returncode == 1
    assert "zipped dimension 'arch': its members have different lengths" in result.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a million jobs


def test_a_million_job_preview_is_lazy(tmp_path):
    started = time.monotonic()
    result = sweep(tmp_path, "a=1_100", "b=1_100", "+c=1_100", DRY, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.output
    assert elapsed < 20, f"the preview of a million jobs took {elapsed:.1f} s"
    lines = preview(result)
    assert lines[2] == "Product of 1,000,000 jobs, 1,000,000 to run:"
    assert lines[3] == "  #0       a=1 b=1 +c=1"
    assert "  ... 999,990 more ..." in lines
    assert lines[-1] == "  #999999  a=100 b=100 +c=100"
    assert len(lines) == 14
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ a database server


def tables(url: str) -> dict[str, list]:
    """Every table of a PostgreSQL database and all its rows, in a stable order."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            names = sqlalchemy.inspect(conn).get_table_names()
            return {
                name: sorted(
                    map(repr, conn.execute(sqlalchemy.text(f'SELECT * FROM "{name}"')).all())
                )
                for name in names
            }
    finally:
        engine.dispose()


def test_a_dry_run_on_postgresql_creates_no_table_and_changes_no_row(tmp_path, postgres_url):
    from postgres_server import fresh_database

    url = fresh_database(postgres_url)
    args = ("a=1-3", "b=0.5,1.5", "fail_at=2", f"hydra.sweeper.storage={url}")
    args = (*args, "hydra.sweeper.mlflow.enabled=false")
    fresh = sweep(tmp_path, *args, DRY)
    assert fresh.returncode == 0, fresh.output
    assert "Product of 6 jobs, 6 to run:" in fresh.output
    assert tables(url) == {}, "the dry run created tables in a fresh database"
    assert list(tmp_path.iterdir()) == []
    assert sweep(tmp_path, *args).returncode == 1  # jobs a=2 failed, the others finished
    before = tables(url)
    result = sweep(tmp_path, *args, DRY)
    assert result.returncode == 0, result.output
    assert "Product of 6 jobs, 2 to run (4 finished, left out):" in result.output
    assert tables(url) == before

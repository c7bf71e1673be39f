"""End-to-end: the passwords of the stores' URLs are nowhere a sweep writes or prints.

A real PostgreSQL server (password auth) holds the Optuna storage and a real
``mlflow server`` the runs; the tracking URI carries credentials too (the test
server ignores them; MLflow's client sends them as basic auth). After a sweep
with a logged metric and a failed job, every output, file, stored attribute,
tag, param and artifact is searched for either password.
"""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import run_app
from postgres_server import PASSWORD, fresh_database

pytestmark = pytest.mark.slow

#: The password of the tracking URI (the PostgreSQL one is postgres_server.PASSWORD).
MLFLOW_PASSWORD = "tr4ck1ng-pa55"
SECRETS = (PASSWORD, MLFLOW_PASSWORD)


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def leaks_in_files(root: Path) -> list[str]:
    """``path: secret`` for every file under ``root`` that holds a secret (bytes, any file)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in SECRETS if s.encode() in data]
    return found


def leaks_in(where: str, value: object) -> list[str]:
    text = repr(value)
    return [f"{where}: {s}" for s in SECRETS if s in text]


def optuna_leaks(url: str) -> tuple[list[str], list[optuna.trial.FrozenTrial]]:
    """Leaks in every study's and trial's attributes (public storage API), and the trials."""
    storage = optuna.storages.RDBStorage(url)
    found: list[str] = []
    all_trials: list[optuna.trial.FrozenTrial] = []
    try:
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
        assert summaries, "no study in the storage"
        for summary in summaries:
            name = summary.study_name
            study_id = storage.get_study_id_from_name(name)
            found += leaks_in(f"study {name}", name)
            found += leaks_in(f"study {name} user_attrs", storage.get_study_user_attrs(study_id))
            found += leaks_in(
                f"study {name} system_attrs", storage.get_study_system_attrs(study_id)
            )
            for trial in storage.get_all_trials(study_id):
                where = f"study {name} trial {trial.number}"
                found += leaks_in(f"{where} user_attrs", trial.user_attrs)
                found += leaks_in(f"{where} system_attrs", trial.system_attrs)
                found += leaks_in(f"{where} params", trial.params)
                found += leaks_in(f"{where} distributions", trial.distributions)
                all_trials.append(trial)
    finally:
        storage.engine.dispose()
    return found, all_trials


def database_leaks(url: str) -> list[str]:
    """Leaks in any row of any table of the database (the ledger included)."""
    import psycopg

    found = []
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        assert "studies" in tables and "trials" in tables, tables
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - our own names
                found += leaks_in(f"table {table}", row)
    return found


def mlflow_leaks(server_url: str, experiment: str, download_to: Path) -> tuple[list[str], list]:
    """Leaks in the experiment, its runs (tags, params, metric names) and all their artifacts."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server_url)
    found: list[str] = []
    for exp in client.search_experiments(view_type=ViewType.ALL):
        found += leaks_in(f"experiment {exp.name}", (exp.name, exp.tags, exp.artifact_location))
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)
    for run in runs:
        where = f"run {run.info.run_name} ({run.info.run_id})"
        found += leaks_in(f"{where} tags", run.data.tags)
        found += leaks_in(f"{where} params", run.data.params)
        found += leaks_in(f"{where} metric names", sorted(run.data.metrics))
        found += leaks_in(f"{where} info", (run.info.run_name, run.info.artifact_uri))
        target = download_to / run.info.run_name.replace("#", "")
        target.mkdir(parents=True)
        if client.list_artifacts(run.info.run_id):
            client.download_artifacts(run.info.run_id, "", str(target))
    found += leaks_in_files(download_to)
    return found, runs


def test_no_password_anywhere(tmp_path, postgres_url, mlflow_server_url):
    database = fresh_database(postgres_url)
    assert PASSWORD in database
    tracking_uri = with_credentials(mlflow_server_url, "ivory", MLFLOW_PASSWORD)
    experiment = f"secrets-{tmp_path.name}"
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_app(
        cwd,
        "hydra.sweeper.mode=chain",
        "model=small,large",
        "a=1-3",
        "log_metric=my_loss",
        "fail_at=3",
        f"hydra.sweeper.storage={database}",
        f"hydra.sweeper.mlflow.tracking_uri={tracking_uri}",
        f"hydra.sweeper.mlflow.experiment_name={experiment}",
        "hydra.sweep.dir=out",
        timeout=600,
    )
    assert result.returncode == 1, result.output  # the failed job fails the sweep
    assert len(result.run_lines) == 5, result.output
    assert "[run#4] failed: RuntimeError: planned failure at a=3" in result.output

    # The console.
    leaks = [f"stdout: {s}" for s in SECRETS if s in result.stdout]
    leaks += [f"stderr: {s}" for s in SECRETS if s in result.stderr]
    # Every file of the run's folder: multirun.yaml, results.yaml, each job's
    # .hydra/*.yaml, app.log and error.txt.
    out = cwd / "out"
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"multirun.yaml", "results.yaml", "4/error.txt", "4/.hydra/hydra.yaml"} <= files
    assert {f"{n}/.hydra/{f}.yaml" for n in range(5) for f in ("config", "hydra", "overrides")} <= (
        files
    )
    leaks += leaks_in_files(cwd)
    # The Optuna storage, through Optuna and row by row.
    optuna_found, trials = optuna_leaks(database)
    leaks += optuna_found + database_leaks(database)
    # The MLflow server: runs and every artifact.
    downloads = tmp_path / "artifacts"
    downloads.mkdir()
    mlflow_found, runs = mlflow_leaks(mlflow_server_url, experiment, downloads)
    leaks += mlflow_found
    assert not leaks, "passwords found:\n" + "\n".join(leaks)

    # What was searched holds what the sweep made.
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4 + ["FAIL"]
    by_name = {r.info.run_name: r for r in runs}
    assert sorted(by_name) == ["run#0", "run#1", "run#2", "run#3", "run#4", "task#0"]
    assert by_name["run#4"].info.status == "FAILED"
    assert "my_loss" in by_name["run#0"].data.metrics  # the job's own client reached the server
    downloaded = {p.name for p in downloads.rglob("*") if p.is_file()}
    assert {"hydra.yaml", "overrides.yaml", "config.yaml", "error.txt", "results.yaml"} <= (
        downloaded
    )

    # The redacted forms are where they should be.
    hidden_storage = database.replace(f":{PASSWORD}@", ":***@")
    hidden_tracking = with_credentials(mlflow_server_url, "ivory", "***")
    assert f"Optuna storage used by this sweep: {hidden_storage}" in result.stdout
    assert f"MLflow tracking store used by this sweep: {hidden_tracking}" in result.stdout
    assert f"optuna-dashboard {hidden_storage}" in result.stdout
    multirun = (out / "multirun.yaml").read_text()
    assert hidden_storage in multirun and hidden_tracking in multirun
    hydra_yaml = (out / "0" / ".hydra" / "hydra.yaml").read_text()
    assert f"hydra.sweeper.storage={hidden_storage}" in hydra_yaml
    assert f"hydra.sweeper.mlflow.tracking_uri={hidden_tracking}" in hydra_yaml
    assert yaml.safe_load((out / "results.yaml").read_text())["storage"] == hidden_storage
    parent = by_name["task#0"]
    assert parent.data.tags["ivory.storage"] == hidden_storage
    assert f"hydra.sweeper.storage={hidden_storage}" in parent.data.tags["ivory.command"]
    assert (
        f"hydra.sweeper.mlflow.tracking_uri={hidden_tracking}" in parent.data.tags["ivory.command"]
    )


@pytest.mark.parametrize(
    "launcher",
    [[], ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]],
    ids=["basic", "submitit_local"],  # submitit pickles each job into the sweep folder
)
def test_storage_from_an_environment_variable_stays_out_of_hydra_files(
    tmp_path, postgres_url, mlflow_template, launcher
):
    database = fresh_database(postgres_url)
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")  # MLflow on, in ./mlflow.db
    interpolation = "${oc.env:IVORY_STORAGE}"
    result = run_app(
        tmp_path,
        *launcher,
        "a=1-3",
        f"hydra.sweeper.storage={interpolation}",
        "hydra.sweep.dir=out",
        env={"IVORY_STORAGE": database},
    )
    assert result.returncode == 0, result.output
    assert len(result.run_lines) == 3
    # The trials are in PostgreSQL, not in a local file.
    [summary] = optuna.get_all_study_summaries(database)
    study = optuna.load_study(study_name=summary.study_name, storage=database)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.best_trial.params == {"a": 2}
    assert not (tmp_path / "optuna.db").exists()
    hidden = database.replace(f":{PASSWORD}@", ":***@")
    assert f"Optuna storage used by this sweep: {hidden}" in result.stdout
    # Hydra's files hold the interpolation, not the URL.
    out = tmp_path / "out"
    multirun = (out / "multirun.yaml").read_text()
    assert f"hydra.sweeper.storage={interpolation}" in multirun
    assert f"storage: {interpolation}" in multirun
    for number in range(3):
        hydra_yaml = (out / str(number) / ".hydra" / "hydra.yaml").read_text()
        assert f"hydra.sweeper.storage={interpolation}" in hydra_yaml, number
        assert f"storage: {interpolation}" in hydra_yaml, number
        assert "postgresql://" not in hydra_yaml, number
    if launcher:  # the launcher's own files were searched too
        assert list((out / ".submitit").rglob("*_submitted.pkl"))
    # No password in any file (the MLflow store ./mlflow.db included) or output.
    assert PASSWORD not in result.output
    leaks = [leak for leak in leaks_in_files(tmp_path) if leak.endswith(PASSWORD)]
    assert not leaks, "password found:\n" + "\n".join(leaks)


def test_tracking_uri_from_an_environment_variable_stays_out_of_every_file(
    tmp_path, mlflow_server_url
):
    from mlflow.tracking import MlflowClient

    tracking_uri = with_credentials(mlflow_server_url, "ivory", MLFLOW_PASSWORD)
    experiment = f"secrets-env-{tmp_path.name}"
    interpolation = "${oc.env:IVORY_TRACKING_URI}"
    result = run_app(
        tmp_path,
        "hydra/launcher=submitit_local",  # pickles each job into the sweep folder
        "hydra.launcher.timeout_min=10",
        "a=1,2",
        "log_metric=my_loss",
        f"hydra.sweeper.mlflow.tracking_uri={interpolation}",
        f"hydra.sweeper.mlflow.experiment_name={experiment}",
        "hydra.sweep.dir=out",
        env={"IVORY_TRACKING_URI": tracking_uri},
        timeout=600,
    )
    assert result.returncode == 0, result.output
    hidden = with_credentials(mlflow_server_url, "ivory", "***")
    assert f"MLflow tracking store used by this sweep: {hidden}" in result.stdout
    # The jobs resolved it in their own processes and reached the server.
    client = MlflowClient(mlflow_server_url)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    children = sorted(r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert children == ["run#0", "run#1"]
    assert all("my_loss" in r.data.metrics for r in runs if r.info.run_name != "task#0")
    out = tmp_path / "out"
    for number in range(2):
        hydra_yaml = (out / str(number) / ".hydra" / "hydra.yaml").read_text()
        assert f"hydra.sweeper.mlflow.tracking_uri={interpolation}" in hydra_yaml, number
    assert list((out / ".submitit").rglob("*_submitted.pkl"))
    leaks = [f"stdout/stderr: {s}" for s in SECRETS if s in result.output]
    leaks += leaks_in_files(tmp_path)
    leaks += [f"run {r.info.run_name}: {s}" for r in runs for s in SECRETS if s in repr(r.data)]
    assert not leaks, "password found:\n" + "\n".join(leaks)

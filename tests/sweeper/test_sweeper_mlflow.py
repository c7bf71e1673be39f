"""End-to-end: every sweep is an MLflow parent run and every job a nested child run.

Real Hydra apps in subprocesses, real MLflow stores (SQLite and a real `mlflow
server` on 127.0.0.1), read back with MlflowClient.
"""

import shutil
import sys
from pathlib import Path

import optuna
import pytest
from conftest import is_sweep_study, run_app
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template):
    """A fresh (already migrated) default store, ./mlflow.db in the app's cwd."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def sweep(tmp_path, *args, **kwargs):
    return run_app(tmp_path, *args, **kwargs)


def runs_of(uri, experiment="app"):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, sorted(children, key=lambda r: int(r.info.run_name.split("#")[1]))


def study_of(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    [name] = [
        s.study_name
        for s in optuna.get_all_study_summaries(storage)
        if is_sweep_study(s.study_name)
    ]
    return optuna.load_study(study_name=name, storage=storage)


def test_parent_and_children_hold_params_metrics_tags_and_artifacts(tmp_path, mlflow_db):
    result = sweep(tmp_path, "a=1-3", "model=small,large", "b=0.5", "hydra.sweep.dir=out")
    assert result.returncode == 0, result.output
    assert f"MLflow tracking store used by this sweep: {mlflow_db}" in result.output
    assert f"mlflow ui --backend-store-uri {mlflow_db}" in result.output
    client, [parent], children = runs_of(mlflow_db)
    assert parent.info.run_name == "task#0" and parent.info.status == "FINISHED"
    assert parent.data.tags["ivory.mode"] == "product"
    assert parent.data.tags["ivory.study_name"].startswith("app-product-a-model-")
    assert "a=1-3" in parent.data.tags["ivory.command"]
    assert parent.data.tags["ivory.best_run"] == "run#3"
    assert parent.data.metrics["best_score"] == 0.5
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["results.yaml"]
    assert [r.info.run_name for r in children] == [f"run#{i}" for i in range(6)]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    child = children[3]  # a=2, model=large
    assert child.info.status == "FINISHED"
    assert child.data.params == {"a": "2", "model": "large", "b": "0.5"}
    assert child.data.metrics["score"] == 0.5
    assert child.data.tags["ivory.overrides"] == "a=2 model=large b=0.5"
    assert child.data.tags["ivory.trial_number"] == "3"
    assert child.data.tags["ivory.output_dir"] == str(tmp_path / "out" / "3")
    artifacts = [a.path for a in client.list_artifacts(child.info.run_id, ".hydra")]
    assert sorted(artifacts) == [".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"]
    trials = study_of(tmp_path).trials
    assert [t.user_attrs["mlflow_run_id"] for t in trials] == [r.info.run_id for r in children]


@pytest.mark.parametrize(
    "launcher",
    [
        [],
        ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
        ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"],  # own processes
    ],
    ids=["basic", "joblib", "submitit_local"],
)
def test_the_apps_own_log_metric_lands_in_its_child_run(tmp_path, mlflow_db, launcher):
    result = sweep(tmp_path, *launcher, "a=1-4", "log_metric=my_loss")
    assert result.returncode == 0, result.output
    client, [parent], children = runs_of(mlflow_db)
    assert len(children) == 4
    for a, child in zip(range(1, 5), children, strict=True):
        history = client.get_metric_history(child.info.run_id, "my_loss")
        expected = (a - 2) ** 2 + 0.5
        assert [m.value for m in history] == [expected + 100, expected]
    assert "my_loss" not in parent.data.metrics


def test_chain_scored_only_by_an_mlflow_metric(tmp_path, mlflow_db):
    result = sweep(
        tmp_path,
        "hydra.sweeper.mode=chain",
        "hydra.sweeper.metric=my_loss",
        "ret=none",
        "log_metric=my_loss",
        "a=0-3",
        "model=small,large",
    )
    assert result.returncode == 0, result.output
    assert [line.split("] ")[1] for line in result.run_lines][4:] == [
        "ret=none log_metric=my_loss model=small a=2",
        "ret=none log_metric=my_loss model=large a=2",
    ]
    study = study_of(tmp_path)
    assert [t.value for t in study.trials] == [4.5, 1.5, 0.5, 1.5, 0.5, 0.0]
    assert study.best_trial.params == {
        "ret": "none",
        "log_metric": "my_loss",
        "model": "large",
        "a": 2,
    }


def test_a_failed_job_has_a_failed_run_with_its_error(tmp_path, mlflow_db):
    result = sweep(tmp_path, "a=1-3", "fail_at=2")
    assert result.returncode == 1
    client, [parent], children = runs_of(mlflow_db)
    assert [r.info.status for r in children] == ["FINISHED", "FAILED", "FINISHED"]
    assert "planned failure at a=2" in children[1].data.tags["ivory.error"]
    assert "error.txt" in [a.path for a in client.list_artifacts(children[1].info.run_id)]
    assert parent.info.status == "FAILED"


def test_resume_reuses_the_parent_and_duplicates_no_child(tmp_path, mlflow_db):
    assert sweep(tmp_path, "a=1-3", "fail_at=3").returncode == 1
    assert sweep(tmp_path, "a=1-3", "fail_at=3").returncode == 1
    _, parents, children = runs_of(mlflow_db)
    assert len(parents) == 1
    assert [r.info.run_name for r in children] == ["run#0", "run#1", "run#2", "run#3"]
    assert [r.data.params["a"] for r in children] == ["1", "2", "3", "3"]


def test_mirroring_off_never_imports_mlflow(tmp_path):
    check = "import sys; assert 'mlflow' not in sys.modules, 'mlflow was imported'"
    result = sweep(
        tmp_path,
        "hydra/sweeper=ivory",
        "hydra.sweeper.mlflow.enabled=false",
        "+a=1,2",
        f'+check="{check}"',
        app="sweep/exec_app.py",
    )
    assert result.returncode == 0, result.output
    assert not (tmp_path / "mlflow.db").exists()


def test_tracking_uri_from_config_and_environment(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "other.db")
    uri = f"sqlite:///{tmp_path}/other.db"
    result = sweep(
        tmp_path,
        "a=1,2",
        f"hydra.sweeper.mlflow.tracking_uri={uri}",
        "hydra.sweeper.mlflow.experiment_name=exp",
    )
    assert result.returncode == 0, result.output
    assert len(runs_of(uri, "exp")[2]) == 2
    shutil.copy(mlflow_template, tmp_path / "env.db")
    env_uri = f"sqlite:///{tmp_path}/env.db"
    result = sweep(tmp_path, "a=1,2", "b=1", env={"MLFLOW_TRACKING_URI": env_uri})
    assert result.returncode == 0, result.output
    assert len(runs_of(env_uri)[2]) == 2
    assert not (tmp_path / "mlflow.db").exists()


def test_no_password_from_the_storage_url_reaches_mlflow(tmp_path, mlflow_db, postgres_url):
    from postgres_server import PASSWORD

    result = sweep(
        tmp_path,
        "a=1,2",
        "model=small,large",
        "hydra.sweeper.mode=chain",
        f"hydra.sweeper.storage={postgres_url}",
        "hydra.sweep.dir=out",
    )
    assert result.returncode == 0, result.output
    assert PASSWORD not in result.output
    assert "postgresql://ivory:***@127.0.0.1" in result.output
    assert PASSWORD not in (tmp_path / "out" / "results.yaml").read_text()
    client, [parent], children = runs_of(mlflow_db)
    assert len(children) == 4
    for run in [parent, *children]:
        assert PASSWORD not in repr(run.data.tags) + repr(run.data.params)
    assert parent.data.tags["ivory.storage"].startswith("postgresql://ivory:***@")
    assert "hydra.sweeper.storage=postgresql://ivory:***@" in parent.data.tags["ivory.command"]
    # the job's .hydra/hydra.yaml records the overrides: the uploaded copy is redacted
    uploaded = client.download_artifacts(
        children[0].info.run_id, ".hydra/hydra.yaml", str(tmp_path)
    )
    text = Path(uploaded).read_text()
    assert "postgresql://ivory:***@" in text and PASSWORD not in text
    # and the sweep really lives in PostgreSQL
    study = optuna.load_study(study_name=parent.data.tags["ivory.study_name"], storage=postgres_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4


@pytest.mark.parametrize("workers", [4])
def test_forty_jobs_from_four_workers_into_one_sqlite_store(tmp_path, mlflow_db, workers):
    result = sweep(
        tmp_path,
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={workers}",
        "a=0-39",
        "log_metric=my_loss",
        timeout=600,
    )
    assert result.returncode == 0, result.output
    assert "database is locked" not in result.output
    client, [parent], children = runs_of(mlflow_db)
    assert len(children) == 40
    assert {r.info.status for r in children} == {"FINISHED"}
    assert all(len(client.get_metric_history(r.info.run_id, "my_loss")) == 2 for r in children)
    assert [t.state.name for t in study_of(tmp_path).trials] == ["COMPLETE"] * 40


def test_a_tracking_server_receives_a_whole_sweep(tmp_path, mlflow_server_url):
    result = sweep(
        tmp_path,
        "hydra.sweeper.mode=chain",
        "a=1-3",
        "model=small,large",
        "log_metric=my_loss",
        f"hydra.sweeper.mlflow.tracking_uri={mlflow_server_url}",
        "hydra.sweeper.mlflow.experiment_name=served-sweep",
        timeout=600,
    )
    assert result.returncode == 0, result.output
    client, [parent], children = runs_of(mlflow_server_url, "served-sweep")
    assert [r.info.run_name for r in children] == [f"run#{i}" for i in range(5)]
    assert {r.info.status for r in [parent, *children]} == {"FINISHED"}
    assert all("my_loss" in r.data.metrics for r in children)
    assert ".hydra" in [a.path for a in client.list_artifacts(children[0].info.run_id)]
    assert not (tmp_path / "mlflow.db").exists()
    assert sys.executable  # the server ran from the same environment


def test_a_nan_score_fails_the_run_the_job_had_finished(tmp_path, mlflow_db):
    result = sweep(tmp_path, "a=1,2", "ret=nan_score")
    assert result.returncode == 1
    _, [parent], children = runs_of(mlflow_db)
    assert [r.info.status for r in children] == ["FAILED", "FAILED"]
    assert [r.data.tags["ivory.state"] for r in children] == ["fail", "fail"]
    assert children[0].data.tags["ivory.reason"] == "score is nan"
    assert children[1].data.tags["ivory.trial_number"] == "1"


def test_an_interrupted_sweep_leaves_nothing_running_and_resumes(tmp_path, mlflow_db):
    result = sweep(tmp_path, "a=1-4", env={"INTERRUPT_AT": "2"})
    assert result.returncode == 130  # as for Ctrl-C
    # a=1 finished and recorded itself; a=2 was interrupted; a=3 and a=4 never started.
    trials = study_of(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "FAIL"]
    assert trials[0].value == 1.5
    assert trials[1].user_attrs["error"] == "KeyboardInterrupt"
    assert trials[2].user_attrs["reason"].startswith("the sweep stopped: KeyboardInterrupt")
    _, [parent], children = runs_of(mlflow_db)
    assert [r.info.status for r in [parent, *children]] == [
        "KILLED",
        "FINISHED",
        "KILLED",
        "KILLED",
        "KILLED",
    ]
    again = sweep(tmp_path, "a=1-4")  # the same command: a resume
    assert again.returncode == 0, again.output
    assert again.run_lines == [f"[run#{n}] a={n - 2}" for n in range(4, 7)]
    _, [parent], children = runs_of(mlflow_db)
    assert parent.info.status == "FINISHED" and len(children) == 7

"""End to end: the scikit-learn example (examples/sklearn) as a user runs it.

A small chain sweep as a subprocess in a fresh folder, with its embedded stores
(Optuna and MLflow SQLite files) read back afterwards: real scikit-learn fits on
the digits data set that ships with scikit-learn. The example's config makes every
configuration a 5-fold cross validation (``repeat: [fold]``, ``fold: 0_4``).
"""

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import is_sweep_study

from ivory_hydra.stores.format import Tag, TrialAttr

pytest.importorskip("sklearn")
pytestmark = pytest.mark.slow

APP = Path(__file__).parents[1] / "examples" / "sklearn" / "train.py"
# model first (both families have C), then C for the winner, then the scaler on or off;
# each configuration on the five folds that the example's config sweeps as repeats
CHAIN = ["model=logreg,svm", "model.C=1e-2_1:3.log", "scale=true,false"]
FOLDS = 5


def run_example(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default: sqlite:///<cwd>/mlflow.db
    return subprocess.run(
        [sys.executable, str(APP), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def chain(tmp_path_factory, mlflow_template):
    """The example's chain sweep, run once for the tests of this module."""
    cwd = tmp_path_factory.mktemp("sklearn-chain")
    shutil.copy(mlflow_template, cwd / "mlflow.db")  # already migrated: no schema upgrade
    proc = run_example(cwd, "-m", *CHAIN, "hydra.sweep.dir=out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return cwd, proc


def load_study(cwd: Path):
    import optuna

    storage = f"sqlite:///{cwd}/optuna.db"
    [name] = [
        s.study_name
        for s in optuna.get_all_study_summaries(storage)
        if is_sweep_study(s.study_name)
    ]
    return optuna.load_study(study_name=name, storage=storage)


def test_chain_sweep_improves_on_its_first_run(chain):
    cwd, proc = chain
    study = load_study(cwd)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 2 + 3 + 2  # one trial per configuration
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len([line for line in proc.stdout.splitlines() if line.startswith("[run#")]) == 35
    for trial in trials:  # scored by the mean of its five folds
        folds = [trial.intermediate_values[f] for f in range(FOLDS)]
        assert trial.value == pytest.approx(statistics.fmean(folds))
        assert trial.user_attrs[TrialAttr.STD] == pytest.approx(statistics.stdev(folds))
    assert (cwd / "out" / "chain.png").is_file()
    first = trials[0]
    # later params at their config defaults: logreg with C=1.0 on scaled features
    assert first.params == {"model": "logreg", "model.C": 1.0, "scale": True}
    assert 0.0 <= study.best_value < first.value < 1.0
    assert "Chain decisions" in proc.stdout
    assert (cwd / "out" / "results.yaml").is_file()


def test_chain_decisions_are_stored_in_the_study(chain):
    cwd, _ = chain
    study = load_study(cwd)
    decisions = study.user_attrs["decisions"]
    assert list(decisions) == ["model", "model.C", "scale"]
    by_run = {t.user_attrs["run_name"]: t for t in study.trials}
    values = {"model": ["logreg", "svm"], "model.C": [0.01, 0.1, 1.0], "scale": [True, False]}
    for param, decision in decisions.items():
        assert set(decision) >= {"value", "index", "score", "run"}
        assert decision["value"] == values[param][decision["index"]]
        trial = by_run[decision["run"]]
        assert trial.value == pytest.approx(decision["score"])
    # each step's winner is the best of its step, so the last decision holds the best score
    assert decisions["scale"]["score"] == pytest.approx(study.best_value)
    # digits: the RBF SVM beats logistic regression clearly
    assert decisions["model"]["value"] == "svm"


def test_the_jobs_own_metrics_land_in_their_fold_runs(chain):
    from mlflow.tracking import MlflowClient

    cwd, _ = chain
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    experiment = client.get_experiment_by_name("train")  # named after the job
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if Tag.PARENT not in r.data.tags]
    configs = [r for r in runs if r.data.tags.get(Tag.PARENT) == parent.info.run_id]
    assert len(configs) == 7
    trials = load_study(cwd).trials
    for config in configs:
        trial = trials[int(config.data.tags[Tag.TRIAL_NUMBER])]
        assert config.data.metrics["score"] == pytest.approx(trial.value)
        folds = [r for r in runs if r.data.tags.get(Tag.PARENT) == config.info.run_id]
        assert len(folds) == FOLDS
        for run in folds:  # the job's own metrics, in its fold's run
            metrics = run.data.metrics
            fold = int(run.data.tags[Tag.REPEAT])
            assert {"val_error", "train_error", "fit_seconds"} <= set(metrics)
            assert metrics["val_error"] == pytest.approx(trial.intermediate_values[fold])
            assert metrics["score"] == pytest.approx(metrics["val_error"])
            assert 0.0 <= metrics["train_error"] <= 1.0 and metrics["fit_seconds"] >= 0.0


def test_a_single_run_fits_once_and_writes_no_store(tmp_path):
    proc = run_example(tmp_path, "model=forest", "data=wine", "fold=4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "val_error=" in proc.stdout + proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # a single run touches no store
    assert not (tmp_path / "optuna.db").exists()


def test_a_param_missing_from_a_family_is_refused_before_any_job(tmp_path):
    # forest has no C: the sweep stops at once instead of failing jobs later in the chain
    proc = run_example(tmp_path, "-m", "model=svm,forest", "model.C=0.1,1")
    assert proc.returncode != 0
    assert "model=forest model.C=0.1" in proc.stderr
    assert not list(tmp_path.glob("multirun/*/*/0"))

"""Optimize mode: Optuna's samplers choose the values, jobs report and get pruned."""

from __future__ import annotations

import json
import math
import shutil

import optuna
import pytest
import yaml
from conftest import run_app

pytestmark = pytest.mark.slow

MINIMUM = (1.5, -0.5)


def study(tmp_path, name=None):
    url = f"sqlite:///{tmp_path}/optuna.db"
    names = [s.study_name for s in optuna.get_all_study_summaries(url)]
    [found] = names if name is None else [name]
    return optuna.load_study(study_name=found, storage=url)


def sphere_sweep(tmp_path, *args):
    """An off-centre 2-D sphere, MLflow off, quiet job logs."""
    return run_app(
        tmp_path,
        "hydra/sweeper=ivory",
        "hydra.sweeper.mode=optimize",
        "hydra.sweeper.mlflow.enabled=false",
        "hydra/job_logging=disabled",
        "+x=-5.0_5.0",
        "+y=interval(-5.0, 5.0)",
        *args,
        app="optimize/sphere.py",
    )


def distance(trial):
    return math.dist((trial.params["x"], trial.params["y"]), MINIMUM)


def test_tpe_lands_near_the_minimum(tmp_path):
    """End to end through Hydra; test_task.py compares TPE with random search on more seeds."""
    result = sphere_sweep(tmp_path, "hydra.sweeper.sampler.seed=2", "hydra.sweeper.n_trials=40")
    assert result.returncode == 0, result.output
    trials = study(tmp_path).trials
    assert len(trials) == 40 and {t.state.name for t in trials} == {"COMPLETE"}
    assert min(distance(t) for t in trials) < 0.5
    assert isinstance(trials[0].distributions["x"], optuna.distributions.FloatDistribution)


def test_resume_continues_up_to_n_trials_in_total(tmp_path):
    first = sphere_sweep(tmp_path, "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler.seed=7")
    assert first.returncode == 0, first.output
    assert len(first.run_lines) == 6
    again = sphere_sweep(tmp_path, "hydra.sweeper.n_trials=6", "hydra.sweeper.sampler.seed=7")
    assert again.run_lines == [] and "nothing to run" in again.output
    more = sphere_sweep(tmp_path, "hydra.sweeper.n_trials=10", "hydra.sweeper.sampler.seed=7")
    assert more.returncode == 0, more.output
    assert [line.split("]")[0] for line in more.run_lines] == [f"[run#{n}" for n in range(6, 10)]
    trials = study(tmp_path).trials
    assert [t.number for t in trials] == list(range(10))
    # the resumed sampler does not draw the first points again
    points = [(t.params["x"], t.params["y"]) for t in trials]
    assert len(set(points)) == 10


def test_hydras_optuna_sweeper_example_runs_after_renaming_the_sweeper(tmp_path):
    result = run_app(
        tmp_path, "hydra.sweeper.mlflow.enabled=false", app="optuna_examples/sphere.py"
    )
    assert result.returncode == 0, result.output
    loaded = study(tmp_path, "sphere")
    assert len(loaded.trials) == 20
    assert loaded.best_value <= 2.0  # x in range(-5.5, 5.5, 0.5), y in {-5, 0, 5}
    assert isinstance(
        loaded.trials[0].distributions["y"], optuna.distributions.CategoricalDistribution
    )
    assert loaded.trials[0].distributions["x"].step == 0.5
    assert {t.params["y"] for t in loaded.trials} <= {-5, 0, 5}


def test_two_objectives_give_a_pareto_front(tmp_path):
    result = run_app(
        tmp_path, "hydra.sweeper.mlflow.enabled=false", app="optuna_examples/multi-objective.py"
    )
    assert result.returncode == 0, result.output
    loaded = study(tmp_path, "multi-objective")
    assert len(loaded.directions) == 2
    front = {t.number for t in loaded.best_trials}  # Optuna's own Pareto front
    assert front
    [results] = list(tmp_path.glob("multirun/*/*/results.yaml"))
    stored = yaml.safe_load(results.read_text())
    assert {int(p["run"].split("#")[1]) for p in stored["pareto"]} == front
    assert "Pareto front" in result.output


@pytest.mark.parametrize(
    "launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]], ids=["basic", "joblib"]
)
def test_a_median_pruner_stops_bad_jobs_from_inside(tmp_path, mlflow_template, launcher):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    record = tmp_path / "steps.jsonl"
    result = run_app(
        tmp_path,
        *launcher,
        "hydra.sweeper.max_batch_size=1",  # the first jobs end before the later ones start
        "a=0,1,2,3,4,5,6",
        "hydra.sweeper.pruner={_target_: optuna.pruners.MedianPruner, n_startup_trials: 2}",
        f"record={record}",
        app="sweep/pruned.py",
    )
    assert result.returncode == 0, result.output
    trials = {t.params["a"]: t for t in study(tmp_path).trials}
    pruned = sorted(a for a, t in trials.items() if t.state.name == "PRUNED")
    assert pruned and set(pruned) <= {4, 5, 6}
    for a in pruned:
        assert trials[a].value == trials[a].intermediate_values[max(trials[a].intermediate_values)]
        assert len(trials[a].intermediate_values) < 5  # it stopped early
    assert trials[2].state.name == "COMPLETE" and len(trials[2].intermediate_values) == 5
    steps = [json.loads(line) for line in record.read_text().splitlines()]
    assert max(s["step"] for s in steps if s["a"] in pruned) < 4
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("pruned").experiment_id])
    by_id = {r.info.run_id: r for r in runs}
    for a in pruned:
        run = by_id[trials[a].user_attrs["mlflow_run_id"]]
        assert run.info.status == "KILLED" and run.data.tags["ivory.state"] == "pruned"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials: optimize mode needs n_trials >= 1"),
        (["hydra.sweeper.n_trials=5", "+z=0.0_0.0"], "the interval from 0.0 to 0.0 is empty"),
        (["hydra.sweeper.n_trials=5", "+z=1e-3_1e-1:x.log"], "quote it"),
        (
            ["hydra.sweeper.n_trials=5", "hydra.sweeper.sampler._target_=optuna.samplers.Nope"],
            "hydra.sweeper.sampler: cannot make optuna.samplers.Nope",
        ),
        (
            [
                "hydra.sweeper.n_trials=5",
                "hydra.sweeper.mode=chain",
                "hydra.sweeper.direction=[minimize,maximize]",
            ],
            "hydra.sweeper.direction: chain mode",
        ),
    ],
)
def test_bad_search_spaces_fail_before_any_job(tmp_path, args, message):
    result = sphere_sweep(tmp_path, *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.run_lines == []
    assert not (tmp_path / "optuna.db").exists()

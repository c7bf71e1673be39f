"""Optimize mode: Optuna's samplers choose the values, jobs report and get pruned."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import optuna
import pytest
import yaml
from conftest import APPS, run_app
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

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


def test_two_objectives_give_a_pareto_front(tmp_path):
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        app="optuna_suite/example/multi-objective.py",
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
    # the same front, as Hydra's Optuna sweeper writes it (test_optuna_suite.py runs its tests)
    [optimization] = list(tmp_path.glob("multirun/*/*/optimization_results.yaml"))
    assert yaml.safe_load(optimization.read_text()) == {
        "name": "optuna",
        "solutions": [{"params": t.params, "values": t.values} for t in loaded.best_trials],
    }


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


def optimization_results(sweep_dir):
    return yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())


def test_optimization_results_hold_the_sampled_params_and_are_written_again_on_a_rerun(tmp_path):
    args = ("hydra.sweeper.n_trials=5", "hydra.sweeper.sampler.seed=3", "+z=7", "hydra.sweep.dir=s")
    first = sphere_sweep(tmp_path, *args)
    assert first.returncode == 0, first.output
    best = study(tmp_path).best_trial
    assert best.params["z"] == 7  # a fixed value is a trial param, but not a sampled one
    written = (tmp_path / "s/optimization_results.yaml").read_text()
    assert yaml.safe_load(written) == {
        "name": "optuna",
        "best_params": {"+x": best.params["x"], "+y": best.params["y"]},  # keyed as overridden
        "best_value": best.value,
    }
    (tmp_path / "s/optimization_results.yaml").unlink()
    again = sphere_sweep(tmp_path, *args)
    assert again.returncode == 0 and "nothing to run" in again.output, again.output
    assert (tmp_path / "s/optimization_results.yaml").read_text() == written


def test_a_custom_search_space_alone_is_a_search_space(tmp_path):
    """Hydra's Optuna sweeper runs a config whose whole space is its custom_search_space."""
    result = run_app(
        tmp_path,
        "hydra/sweeper=ivory",
        "hydra.sweeper.mode=optimize",
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.n_trials=4",
        "hydra.sweeper.custom_search_space=sphere.space",
        "hydra.sweep.dir=s",
        app="optimize/sphere.py",
    )
    assert result.returncode == 0, result.output
    trials = study(tmp_path).trials
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    assert all(set(t.params) == {"+x", "+y"} for t in trials)
    assert set(optimization_results(tmp_path / "s")["best_params"]) == {"+x", "+y"}


def test_the_last_of_two_workers_writes_optimization_results(tmp_path):
    """Two copies of one command share a journal; the one that ends last reports."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(APPS / "sweep/app.py"),
                "-m",
                "hydra.sweeper.mode=optimize",
                "hydra.sweeper.n_trials=10",
                "hydra.sweeper.mlflow.enabled=false",
                f"hydra.sweeper.storage={tmp_path}/sweep.journal",
                f"hydra.sweep.dir=w{i}",
                "a=0_9",
                "b=0.0_1.0",
                "sleep=0.5",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    logs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    assert all("This worker ran" in log and "This worker ran 0 jobs" not in log for log in logs)
    written = [i for i in range(2) if (tmp_path / f"w{i}/optimization_results.yaml").exists()]
    assert len(written) == 1, logs  # the last worker's
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "sweep.journal")))
    [summary] = optuna.get_all_study_summaries(storage)
    loaded = optuna.load_study(study_name=summary.study_name, storage=storage)
    assert len(loaded.trials) == 10
    assert optimization_results(tmp_path / f"w{written[0]}") == {
        "name": "optuna",
        "best_params": {k: loaded.best_trial.params[k] for k in ("a", "b")},  # not sleep
        "best_value": loaded.best_value,
    }


def test_failed_jobs_make_an_optimize_sweep_fail_at_the_end(tmp_path):
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.max_failure_rate=null",  # the example's 0.0 would stop at the first
        "hydra.sweep.dir=s",
        "error=true",
        app="optuna_suite/example/sphere.py",
    )
    stored = yaml.safe_load((tmp_path / "s/results.yaml").read_text())
    assert stored["runs"] == {"fail": 2}
    assert result.returncode == 1, result.output
    assert "2 of 2 jobs failed" in result.stderr
    assert [f["run"] for f in stored["failed"]] == ["run#0", "run#1"]

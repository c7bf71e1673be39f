"""Repeats (folds, seeds): a configuration is one trial scored by the mean of its repeats.

Real Hydra apps (tests/apps/repeats: fold 0 alone picks another lr than the
mean), real Optuna and MLflow stores. The app records every job's start and
end, so the checks compare what ran with what both stores hold.
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import APPS, run_app
from mlflow.tracking import MlflowClient

from ivory_hydra.stores.format import Tag, TrialAttr

pytestmark = pytest.mark.slow

SCORES = {
    0.1: [0.1, 1.0, 1.0, 1.0, 1.0],
    0.01: [0.2, 0.3, 0.3, 0.3, 0.3],
    0.001: [0.9, 0.9, 0.9, 0.9, 0.9],
}
LRS = "lr=0.1,0.01,0.001"


def repeats(tmp_path: Path, *args: str, mlflow: bool = False, **kwargs) -> object:
    extra = [] if mlflow else ["hydra.sweeper.mlflow.enabled=false"]
    record = f"record={tmp_path / 'jobs.jsonl'}"
    return run_app(
        tmp_path, *extra, record, "hydra.sweep.dir=s", *args, app="repeats/app.py", **kwargs
    )


def events(tmp_path: Path, event: str = "end") -> list[dict]:
    path = tmp_path / "jobs.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == event]


def study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path}/optuna.db"
    [summary] = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url)


def by_lr(trials) -> dict:
    return {t.params["lr"]: t for t in trials}


def mean(lr: float, folds: int = 5) -> float:
    return statistics.fmean(SCORES[lr][:folds])


def test_a_product_scores_each_configuration_by_the_mean_of_its_folds(tmp_path, mlflow_template):
    (tmp_path / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    result = repeats(tmp_path, LRS, "fold=0_4", "hydra.sweeper.repeat=[fold]", mlflow=True)
    assert result.returncode == 0, result.output
    ran = Counter((e["lr"], e["fold"]) for e in events(tmp_path))
    assert ran == Counter((lr, f) for lr in SCORES for f in range(5))  # each repeat once
    assert len(result.run_lines) == 15  # each repeat prints its own line
    trials = study(tmp_path).trials
    assert len(trials) == 3 and {t.state.name for t in trials} == {"COMPLETE"}
    for lr, trial in by_lr(trials).items():
        assert "fold" not in trial.params  # a configuration's params leave the repeat out
        assert trial.value == pytest.approx(mean(lr))
        assert trial.intermediate_values == {f: s for f, s in enumerate(SCORES[lr])}
        assert trial.user_attrs[TrialAttr.STD] == pytest.approx(statistics.stdev(SCORES[lr]))
        assert trial.user_attrs[TrialAttr.REPEATS] == 5
    stored = yaml.safe_load((tmp_path / "s/results.yaml").read_text())
    best = stored["best"]
    assert best["params"]["lr"] == 0.01 and "fold" not in best["params"] and best["n"] == 5
    assert stored["best"]["score"] == pytest.approx(0.28)
    assert [c["n"] for c in stored["configurations"]] == [5, 5, 5]
    assert "Best configuration: config#1, score 0.28 ± 0.04472 (5)" in result.output

    # MLflow: the parent, a run per configuration, a nested run per repeat
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    parents = [r for r in runs if Tag.PARENT not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    configs = [r for r in runs if r.data.tags.get(Tag.PARENT) == parents[0].info.run_id]
    assert sorted(r.info.run_name for r in configs) == ["config#0", "config#1", "config#2"]
    for config in configs:
        trial = study(tmp_path).trials[int(config.data.tags[Tag.TRIAL_NUMBER])]
        assert config.data.metrics["score"] == pytest.approx(trial.value)
        assert config.data.metrics["score_std"] == pytest.approx(trial.user_attrs["std"])
        nested = [r for r in runs if r.data.tags.get(Tag.PARENT) == config.info.run_id]
        assert sorted(int(r.data.tags[Tag.REPEAT]) for r in nested) == list(range(5))
        lr = trial.params["lr"]
        for run in nested:
            assert run.data.params["fold"] == run.data.tags[Tag.REPEAT]
            assert run.data.metrics["score"] == SCORES[lr][int(run.data.tags[Tag.REPEAT])]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_a_chain_decides_on_the_mean_not_on_fold_0(tmp_path):
    args = ("hydra.sweeper.mode=chain", "lr=0.1,0.01", "fold=0_4")
    (tmp_path / "alone").mkdir()
    alone = repeats(tmp_path / "alone", *args)
    assert alone.returncode == 0, alone.output
    assert "Chain: lr is fixed at 0.1" in alone.output  # without repeats, fold 0 decides
    result = repeats(tmp_path, *args, "hydra.sweeper.repeat=[fold]")
    assert result.returncode == 0, result.output
    assert "Chain: lr is fixed at 0.01" in result.output  # the mean of the folds decides
    decision = study(tmp_path).user_attrs["decisions"]["lr"]
    assert decision["value"] == 0.01 and decision["score"] == pytest.approx(0.28)


def test_optimize_mode_samples_configurations(tmp_path):
    result = repeats(
        tmp_path,
        "hydra.sweeper.mode=optimize",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.seed=0",
        "lr=choice(0.1,0.01,0.001)",
        "fold=0_2",
        "hydra.sweeper.repeat=fold",
    )
    assert result.returncode == 0, result.output
    trials = study(tmp_path).trials
    assert len(trials) == 3  # n_trials counts configurations
    for trial in trials:
        lr = trial.params["lr"]
        assert set(trial.params) == {"lr", "record"}  # a fixed value, and no fold
        assert trial.intermediate_values == {f: SCORES[lr][f] for f in range(3)}
        assert trial.value == pytest.approx(mean(lr, 3))
    assert len(events(tmp_path)) == 9


@pytest.mark.parametrize(
    "mode",
    [
        ["lr=0.1,0.01"],
        ["hydra.sweeper.mode=chain", "lr=0.1,0.01"],
        ["hydra.sweeper.mode=optimize", "hydra.sweeper.n_trials=2", "lr=choice(0.1,0.01)"],
    ],
    ids=["product", "chain", "optimize"],
)
def test_under_joblib_each_repeat_runs_in_a_worker_with_its_own_run(
    tmp_path, mlflow_template, mode
):
    (tmp_path / "mlflow.db").write_bytes(mlflow_template.read_bytes())
    result = repeats(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        *mode,
        "fold=0_2",
        "hydra.sweeper.repeat=[fold]",
        mlflow=True,
    )
    assert result.returncode == 0, result.output
    trials = study(tmp_path).trials
    assert len(trials) == 2 and {t.state.name for t in trials} == {"COMPLETE"}
    for trial in trials:
        lr = trial.params["lr"]
        assert trial.intermediate_values == {f: SCORES[lr][f] for f in range(3)}
        assert trial.value == pytest.approx(mean(lr, 3))
    ended = events(tmp_path)
    assert len(ended) == 6
    assert Counter((e["lr"], e["fold"]) for e in ended) == Counter(
        (t.params["lr"], f) for t in trials for f in range(3)
    )
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    assert len([r for r in runs if Tag.REPEAT in r.data.tags]) == 6
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_a_pruner_stops_a_poor_configuration_after_its_second_repeat(tmp_path):
    """The median pruner (no judgement before step 1) judges lr=0.001 after its
    second fold against the configurations that completed before it (0.3 and
    1.0 there): it runs none of its last three folds."""
    pruner = "{_target_: optuna.pruners.MedianPruner, n_startup_trials: 0, n_warmup_steps: 1}"
    result = repeats(
        tmp_path, LRS, "fold=0_4", "hydra.sweeper.repeat=[fold]", f"hydra.sweeper.pruner={pruner}"
    )
    assert result.returncode == 0, result.output
    ran = Counter((e["lr"], e["fold"]) for e in events(tmp_path))
    assert ran == Counter(
        [(lr, f) for lr in (0.1, 0.01) for f in range(5)] + [(0.001, 0), (0.001, 1)]
    )
    trials = by_lr(study(tmp_path).trials)
    assert trials[0.001].state.name == "PRUNED"
    assert trials[0.001].intermediate_values == {0: 0.9, 1: 0.9}
    assert trials[0.001].value == pytest.approx(0.9)  # the aggregate of its repeats so far
    assert trials[0.01].state.name == "COMPLETE"
    assert trials[0.01].value == pytest.approx(0.28)


def test_a_failed_repeat_fails_its_configuration_and_a_rerun_runs_only_it(tmp_path):
    args = (LRS, "fold=0_2", "hydra.sweeper.repeat=[fold]")
    first = repeats(tmp_path, *args, env={"FAIL_AT": "0.01/1"})
    assert first.returncode == 1 and "repeat 1 (run#4) failed" in first.output
    failed = by_lr(study(tmp_path).trials)[0.01]
    assert failed.state.name == "FAIL"
    assert failed.intermediate_values == {0: 0.2, 2: 0.3}  # its finished repeats are kept
    stored = yaml.safe_load((tmp_path / "s/results.yaml").read_text())
    assert stored["best"]["params"]["lr"] == 0.1  # a failed configuration never wins
    before = len(events(tmp_path))
    rerun = repeats(tmp_path, *args)
    assert rerun.returncode == 0, rerun.output
    ran = [(e["lr"], e["fold"]) for e in events(tmp_path)[before:]]
    assert ran == [(0.01, 1)]  # only the failed repeat ran again
    trials = study(tmp_path).trials
    final = [t for t in trials if t.params["lr"] == 0.01 and t.state.name == "COMPLETE"]
    assert len(final) == 1 and final[0].value == pytest.approx(mean(0.01, 3))
    assert final[0].intermediate_values == {0: 0.2, 1: 0.3, 2: 0.3}


def test_a_killed_sweep_reruns_each_missing_repeat_once_and_no_finished_one(tmp_path):
    cmd = [
        sys.executable,
        str(APPS / "repeats/app.py"),
        "-m",
        "hydra.sweeper.mlflow.enabled=false",
        f"record={tmp_path / 'jobs.jsonl'}",
        "hydra.sweep.dir=s",
        LRS,
        "fold=0_4",
        "sleep=0.3",
        "hydra.sweeper.repeat=[fold]",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    # the 8th job started: the 7th recorded its outcome; the 8th (0.3 s) is in flight
    while len(events(tmp_path, "start")) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = Counter((e["lr"], e["fold"]) for e in events(tmp_path))
    assert 7 <= sum(first.values()) < 15
    rerun = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    ended = Counter((e["lr"], e["fold"]) for e in events(tmp_path))
    assert ended == Counter((lr, f) for lr in SCORES for f in range(5))  # each once in all
    trials = study(tmp_path).trials
    assert not [t for t in trials if not t.state.is_finished()]
    complete = by_lr(t for t in trials if t.state.name == "COMPLETE")
    assert sorted(complete) == sorted(SCORES)
    for lr, trial in complete.items():
        assert trial.value == pytest.approx(mean(lr))
        assert trial.intermediate_values == {f: s for f, s in enumerate(SCORES[lr])}


def test_bad_repeat_input_fails_before_any_job(tmp_path):
    cases = [
        (("lr=0.1,0.01", "hydra.sweeper.repeat=[seed]"), "hydra.sweeper.repeat: 'seed'"),
        (("lr=0.1,0.01", "fold=0_2", "hydra.sweeper.repeat=[fold,fold]"), "named twice"),
        (
            ("fold=0_2", "hydra.sweeper.repeat=fold", "hydra.sweeper.aggregate=avg"),
            "hydra.sweeper.aggregate: unknown aggregate 'avg'",
        ),
    ]
    for args, message in cases:
        result = repeats(tmp_path, *args)
        assert result.returncode == 1 and message in result.output, result.output
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "jobs.jsonl").exists()

"""Zipped dimensions end to end: ``arch=zip(model=[...], a=[...])`` is one dimension.

Real Hydra apps in subprocesses (tests/apps/sweep: score (a - 2)**2 + b +
model.penalty, with penalty 0.5 for small and 0 for large and huge), real
SQLite Optuna and MLflow stores, read back with their own clients. Each form
(the app's YAML, the command line under hydra.sweeper.params) runs in each
mode; each bad input is refused before anything is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import AppRun, run_app
from mlflow.tracking import MlflowClient

from ivory_hydra.stores.format import Tag

pytestmark = pytest.mark.slow

PENALTY = {"small": 0.5, "large": 0.0, "huge": 0.0}
ROWS = [("small", 1), ("large", 2), ("huge", 3)]  # zipped.yaml's rows (model, a)
CLI_ZIP = "hydra.sweeper.params.arch='zip(model=[small,large,huge], a=[1,2,3])'"


def score(model: str, a: float, b: float) -> float:
    return (a - 2) ** 2 + b + PENALTY[model]


def sweep(cwd: Path, *args: str, app: str = "sweep/app.py") -> AppRun:
    return run_app(cwd, "hydra.sweep.dir=s", *args, app=app)


def configs(cwd: Path) -> dict[int, dict]:
    """Each job's own config (its folder's .hydra/config.yaml), by job number."""
    found = cwd.glob("s/*/.hydra/config.yaml")
    return {int(p.parent.parent.name): yaml.safe_load(p.read_text()) for p in found}


def jobs(cwd: Path) -> list[tuple[str, int, float]]:
    """What each job's own config held, (model, a, b), by job number; never the name."""
    found = configs(cwd)
    assert found and all("arch" not in c for c in found.values())
    return [(c["model"]["name"], c["a"], c["b"]) for _, c in sorted(found.items())]


def study(cwd: Path) -> optuna.Study:
    url = f"sqlite:///{cwd}/optuna.db"
    [summary] = optuna.get_all_study_summaries(url)
    return optuna.load_study(study_name=summary.study_name, storage=url)


def child_runs(cwd: Path) -> list:
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    experiment = client.get_experiment_by_name("app")
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if Tag.PARENT in r.data.tags]


@pytest.fixture
def cwd(tmp_path, mlflow_template):
    """The app's folder, with a fresh default MLflow store (./mlflow.db)."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return tmp_path


def assert_members_recorded(cwd: Path, members: tuple[str, ...] = ("model", "a", "b")) -> None:
    """Every trial and MLflow run holds each member's value; no job config holds the name."""
    trials = study(cwd).trials
    by_number = {t.number: t for t in trials}
    for trial in trials:
        assert "arch" not in trial.user_attrs["overrides"]
        model, a = trial.params["model"], trial.params["a"]
        assert {f"model={model}", f"a={a}"} <= set(trial.user_attrs["overrides"].split())
        assert (model, a) in ROWS  # a row, never a cross of two rows
    runs = child_runs(cwd)
    assert len(runs) == len(trials)
    for run in runs:
        trial = by_number[int(run.data.tags[Tag.TRIAL_NUMBER])]
        for member in members:
            assert run.data.params[member] == str(trial.params[member])
    assert all("arch" not in config for config in configs(cwd).values())


# ------------------------------------------------------------------ each form in each mode

FORMS = {"yaml": ("--config-name", "zipped"), "cli": (CLI_ZIP, "b=0.5,1.5")}
MODES = {
    "product": (),
    "chain": ("hydra.sweeper.mode=chain",),
    "optimize": ("hydra.sweeper.mode=optimize", "hydra.sweeper.n_trials=6"),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("form", list(FORMS))
def test_each_form_in_each_mode_runs_rows_and_records_each_member(cwd, form, mode):
    result = sweep(cwd, *MODES[mode], "hydra.sweeper.sampler.seed=0", *FORMS[form])
    assert result.returncode == 0, result.output
    trials = study(cwd).trials
    # product: 3 rows x 2 b; chain: 3 rows, then b at the winning row; optimize: n_trials
    assert len(trials) == {"product": 6, "chain": 5, "optimize": 6}[mode]
    assert {t.state.name for t in trials} == {"COMPLETE"}
    for trial in trials:
        assert trial.value == score(trial.params["model"], trial.params["a"], trial.params["b"])
    assert_members_recorded(cwd)
    if mode == "chain":
        decision = study(cwd).user_attrs["decisions"]["arch"]
        winner = min(ROWS, key=lambda row: score(*row, 0.5))
        assert decision["value"] == {"model": winner[0], "a": winner[1]}


# ------------------------------------------------------------------ product


def test_a_zip_in_the_apps_yaml_is_crossed_with_the_other_dimensions(cwd):
    result = sweep(cwd, "--config-name", "zipped")
    assert result.returncode == 0, result.output
    expected = [(m, a, b) for m, a in ROWS for b in (0.5, 1.5)]
    assert result.run_lines == [
        f"[run#{i}] model={m} a={a} b={b}" for i, (m, a, b) in enumerate(expected)
    ]
    assert sorted(jobs(cwd)) == sorted(expected)  # each job's config got the row's members
    trials = study(cwd).trials
    assert [(t.params["model"], t.params["a"], t.params["b"]) for t in trials] == expected
    assert all(set(t.params) == {"model", "a", "b"} for t in trials)  # the name is no param
    assert [t.value for t in trials] == [score(*job) for job in expected]
    assert study(cwd).user_attrs["definition"]["params"] == {
        "arch": ["model=small a=1", "model=large a=2", "model=huge a=3"],
        "b": ["0.5", "1.5"],
    }
    assert_members_recorded(cwd)
    assert (cwd / "s/0/.hydra/overrides.yaml").read_text().split() == [
        "-",
        "model=small",
        "-",
        "a=1",
        "-",
        "b=0.5",
    ]

    again = sweep(cwd, "--config-name", "zipped")  # the same command finds its study
    assert again.returncode == 0, again.output
    assert "Every job of this sweep finished already: nothing to run" in again.output
    assert again.run_lines == [] and len(study(cwd).trials) == 6


def test_a_command_line_zip_of_range_strings_choice_and_range_members(cwd):
    zipped = "hydra.sweeper.params.arch='zip(a=1_3, model=choice(small,large,huge), +c=range(0,3))'"
    result = sweep(cwd, zipped, "b=0.5")
    assert result.returncode == 0, result.output
    assert result.run_lines == [
        "[run#0] b=0.5 a=1 model=small c=0",
        "[run#1] b=0.5 a=2 model=large c=1",
        "[run#2] b=0.5 a=3 model=huge c=2",
    ]
    trials = study(cwd).trials
    assert [t.params for t in trials] == [
        {"b": 0.5, "a": a, "model": m, "c": c} for c, (m, a) in enumerate(ROWS)
    ]
    assert [t.user_attrs["overrides"] for t in trials][0] == "a=1 model=small +c=0 b=0.5"
    assert_members_recorded(cwd, ("model", "a", "c"))


# ------------------------------------------------------------------ chain


def test_a_chain_steps_a_command_line_zip_as_one_param_and_fixes_every_member(cwd):
    result = sweep(cwd, "hydra.sweeper.mode=chain", CLI_ZIP, "b=0.5,1.5")
    assert result.returncode == 0, result.output
    assert result.run_lines == [
        "[run#0] model=small a=1",  # b at its config default (0.0) until its step
        "[run#1] model=large a=2",
        "[run#2] model=huge a=3",
        "[run#3] b=0.5 model=large a=2",
        "[run#4] b=1.5 model=large a=2",
    ]
    assert "Chain: arch is fixed at model=large a=2" in result.output
    decision = study(cwd).user_attrs["decisions"]["arch"]
    assert decision == {
        "value": {"model": "large", "a": 2},
        "index": 1,
        "score": 0.0,
        "run": "run#1",
    }
    assert jobs(cwd) == [
        ("small", 1, 0.0),
        ("large", 2, 0.0),
        ("huge", 3, 0.0),
        ("large", 2, 0.5),
        ("large", 2, 1.5),
    ]
    trials = study(cwd).trials
    assert [t.params["b"] for t in trials] == [0.0, 0.0, 0.0, 0.5, 1.5]  # the default, then swept
    assert_members_recorded(cwd)
    results = yaml.safe_load((cwd / "s/results.yaml").read_text())
    assert results["decisions"]["arch"]["value"] == {"model": "large", "a": 2}
    assert "arch  model=large a=2" in result.output  # the summary's decision table
    assert (cwd / "s/chain.png").exists()


def test_a_chain_job_before_the_zips_step_records_the_members_config_defaults(cwd):
    zipped = "hydra.sweeper.params.arch='zip(model=[small,large], a=[1,2])'"
    result = sweep(cwd, "hydra.sweeper.mode=chain", "hydra.sweeper.params.b=0_1", zipped)
    assert result.returncode == 0, result.output
    assert result.run_lines[:2] == ["[run#0] b=0", "[run#1] b=1"]
    trials = study(cwd).trials
    assert [t.params for t in trials[:2]] == [
        {"b": 0.0, "model": "small", "a": 0},  # model and a at their config defaults
        {"b": 1.0, "model": "small", "a": 0},
    ]
    assert [(t.params["model"], t.params["a"], t.params["b"]) for t in trials[2:]] == [
        ("small", 1, 0.0),
        ("large", 2, 0.0),
    ]
    runs = {r.info.run_name: r.data.params for r in child_runs(cwd)}
    assert runs["run#0"] == {"b": "0", "model": "small", "a": "0"}


# ------------------------------------------------------------------ optimize


def test_optimize_picks_whole_rows_as_one_categorical_param(cwd):
    args = (
        "hydra.sweeper.mode=optimize",
        "hydra.sweeper.n_trials=6",
        "hydra/sweeper/sampler=grid",
        "--config-name",
        "zipped",
    )
    result = sweep(cwd, *args)
    assert result.returncode == 0, result.output
    trials = study(cwd).trials
    labels = ("model=small a=1", "model=large a=2", "model=huge a=3")
    for trial in trials:
        assert trial.distributions["arch"] == optuna.distributions.CategoricalDistribution(labels)
        assert trial.params["arch"] == f"model={trial.params['model']} a={trial.params['a']}"
    combos = sorted((t.params["model"], t.params["a"], t.params["b"]) for t in trials)
    assert combos == sorted((m, a, b) for m, a in ROWS for b in (0.5, 1.5))  # the grid of rows
    assert sorted(jobs(cwd)) == combos
    assert [t.value for t in trials] == [
        score(t.params["model"], t.params["a"], t.params["b"]) for t in trials
    ]
    assert_members_recorded(cwd)
    assert all("arch=" not in line for line in result.run_lines)  # a run line shows the members
    best = yaml.safe_load((cwd / "s/optimization_results.yaml").read_text())
    assert best == {
        "name": "optuna",
        "best_params": {"b": 0.5, "model": "large", "a": 2},
        "best_value": 0.5,
    }

    again = sweep(cwd, *args)
    assert again.returncode == 0, again.output
    assert again.run_lines == [] and len(study(cwd).trials) == 6


# ------------------------------------------------------------------ repeats


def test_a_whole_zipped_dimension_may_be_the_repeats(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    result = sweep(
        tmp_path,
        "lr=0.1,0.01",
        "hydra.sweeper.params.pair='zip(fold=[0,1], +seed=[7,8])'",
        "hydra.sweeper.repeat=[pair]",
        app="repeats/app.py",
    )
    assert result.returncode == 0, result.output
    trials = study(tmp_path).trials
    assert [t.params for t in trials] == [{"lr": 0.1}, {"lr": 0.01}]  # configurations
    assert [t.intermediate_values for t in trials] == [{0: 0.1, 1: 1.0}, {0: 0.2, 1: 0.3}]
    repeats = [r for r in child_runs(tmp_path) if Tag.REPEAT in r.data.tags]
    pairs = sorted(
        (r.data.params["lr"], r.data.params["fold"], r.data.params["seed"]) for r in repeats
    )
    assert pairs == [("0.01", "0", "7"), ("0.01", "1", "8"), ("0.1", "0", "7"), ("0.1", "1", "8")]


# ------------------------------------------------------------------ bad input


def assert_refused_and_nothing_written(result: AppRun, cwd: Path) -> None:
    assert result.returncode == 1, result.output
    assert "Traceback" not in result.stderr, result.stderr
    assert result.run_lines == [], result.stdout
    assert sorted(p.name for p in cwd.iterdir()) == []  # no store, journal or folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["hydra.sweeper.params.arch='zip(model=[small,large], a=[1,2,3])'"],
            "hydra.sweeper.params.arch: zipped dimension 'arch': its members have different "
            "lengths: model has 2 values, a has 3 values",
        ),
        (["hydra.sweeper.params.arch='zip()'"], "zipped dimension 'arch': the zip is empty"),
        (
            ["hydra.sweeper.params.arch='zip(a=[1,2], a=[3,4])'"],
            "zipped dimension 'arch': member 'a' is given twice",
        ),
        (
            [CLI_ZIP, "a=1,2"],
            "zipped dimension 'arch': member 'a' is also swept on its own",
        ),
        (
            [CLI_ZIP, "hydra.sweeper.params.a=1_2"],
            "zipped dimension 'arch': member 'a' is also swept on its own",
        ),
        (
            ["--config-name", "with_params", CLI_ZIP],  # its YAML sweeps a, b and model
            "zipped dimension 'arch': member 'model' is also swept on its own",
        ),
        ([CLI_ZIP, "a=2"], "zipped dimension 'arch': member 'a' is also set on its own"),
        (
            ["hydra.sweeper.params.model='zip(a=[1,2], b=[3,4])'"],
            "zipped dimension 'model': 'model' is a config key or group",
        ),
        (
            ["hydra.sweeper.params.b='zip(a=[1,2], model=[small,large])'"],
            "zipped dimension 'b': 'b' is a config key or group",
        ),
        (
            ["hydra.sweeper.params.arch='zip(model=[small,large], [1,2])'"],
            "zipped dimension 'arch': malformed zip: '[1,2]' is not a member",
        ),
        (
            ["hydra.sweeper.params.arch='zip(model=[small,large], a=[1,2]'"],
            "zipped dimension 'arch': malformed zip: unbalanced brackets",
        ),
        (
            ["hydra.sweeper.params.arch='zip(model=[small,large], b=interval(0,1))'"],
            "zipped dimension 'arch': member 'b': interval() is continuous",
        ),
        (
            [CLI_ZIP, "hydra.sweeper.repeat=[a]"],
            "zipped dimension 'arch': member 'a' is named in repeat",
        ),
        (
            ["hydra.sweeper.params.arch='zip(model=[small,tiny], a=[1,2])'"],
            "zipped dimension 'arch': member 'model': overrides 'model=tiny a=1' are not accepted",
        ),
        (  # a bad value in the first row, which every job's base composition holds
            ["b=0.5,1.5", "hydra.sweeper.params.arch='zip(model=[tiny,small], a=[1,2])'"],
            "hydra.sweeper.params.arch: zipped dimension 'arch': member 'model': overrides",
        ),
        (
            ["+arch='zip(model=[small,large], a=[1,2])'"],
            "a zipped dimension is written under hydra.sweeper.params, quoted: "
            "hydra.sweeper.params.arch='zip(model=[small,large], a=[1,2])'",
        ),
    ],
)
def test_a_bad_zip_is_refused_before_anything_is_written(tmp_path, args, message):
    result = run_app(tmp_path, *args)  # MLflow on: its default store must not appear either
    assert_refused_and_nothing_written(result, tmp_path)
    assert message in result.stderr


def test_a_bare_zip_on_the_command_line_fails_in_hydras_grammar(tmp_path):
    result = run_app(tmp_path, "arch=zip(model=[small,large],a=[1,2])")
    assert_refused_and_nothing_written(result, tmp_path)
    assert "Unknown function 'zip'" in result.stderr  # Hydra parses it before any sweeper runs

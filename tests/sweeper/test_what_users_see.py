"""What a user sees, through real Hydra apps in subprocesses with real SQLite stores.

One value is printed one way everywhere; Hydra's BasicLauncher does not repeat
our run lines; default study names say what is swept (and a study named by the
previous release still resumes); a plain number scored under a named metric is
said once; a chain of repeats draws each aggregate with its spread.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import is_sweep_study, run_app

from ivory_hydra.core.aggregate import aggregate
from ivory_hydra.stores.format import TrialAttr
from ivory_hydra.sweeper.chain_plot import step_points

pytestmark = pytest.mark.slow

MLFLOW_OFF = "hydra.sweeper.mlflow.enabled=false"
LONG = "0.007038135554931555"  # b's winning value: its score too (model=large: no penalty)


def studies(cwd: Path) -> list[str]:
    return optuna.get_all_study_names(f"sqlite:///{cwd}/optuna.db")


def announced(output: str) -> str:
    """The study name in 'Ivory sweeper: ... (study '<name>')'."""
    [name] = re.findall(r"Ivory sweeper: .* \(study '([^']+)'\)", output)
    return name


def log_messages(output: str) -> list[str]:
    """Every log line's message (the timestamp and logger cut off)."""
    return [re.sub(r"^\[[^]]+\]\[[^]]+\] ", "", line) for line in output.splitlines()]


# ---------------------------------------------------------------- one value, one format


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """A chain whose winners are b=0.007038135554931555, a=2.0 (an integral float) and
    fail_at=null; the score is (a - 2)**2 + b, so the best score is b's value."""
    cwd = tmp_path_factory.mktemp("format")
    result = run_app(
        cwd,
        MLFLOW_OFF,
        "hydra.sweeper.mode=chain",
        "model=large",
        f"b=1.0,{LONG}",
        "a=1.0,2.0",
        "fail_at=null,99",  # no job fails: a tie, so null (the first) wins
        "hydra.sweep.dir=s",
    )
    assert result.returncode == 0, result.output
    return cwd, result


def test_one_value_is_printed_one_way_in_every_place(chain):
    cwd, result = chain
    lines = log_messages(result.output)
    # run lines
    assert result.run_lines == [
        "[run#0] model=large b=1",
        "[run#1] model=large b=0.007038",
        "[run#2] model=large a=1 b=0.007038",
        "[run#3] model=large a=2 b=0.007038",
        "[run#4] model=large fail_at=None b=0.007038 a=2",
        "[run#5] model=large fail_at=99 b=0.007038 a=2",
    ]
    # the chain's 'is fixed at' lines
    assert "Chain: b is fixed at 0.007038" in lines and "Chain: a is fixed at 2" in lines
    assert "Chain: fail_at is fixed at None" in lines
    # the decisions table (param, value, score, run)
    assert re.search(r"^  b +0\.007038 +4\.007 +run#1$", result.output, re.M), result.output
    assert re.search(r"^  a +2 +0\.007038 +run#3$", result.output, re.M), result.output
    assert re.search(r"^  fail_at +None +0\.007038 +run#4$", result.output, re.M)
    # the best-run block: the value is also the best score
    assert "Best run: run#3, score 0.007038" in lines
    block = lines[lines.index("Best run: run#3, score 0.007038") + 1 :][:3]
    assert sorted(line.split() for line in block) == [
        ["a", "2"],
        ["b", "0.007038"],
        ["model", "large"],
    ]
    # never another format of the same values (Hydra's '#3 : a=2.0 b=0.00703813...' neither)
    assert LONG not in result.output
    assert not re.search(r"\b[ab]=[12]\.0\b|fixed at [12]\.0|\b2\.0\b|null", result.output)
    # results.yaml keeps numbers as data, exact, and the override as the job got it
    stored = yaml.safe_load((cwd / "s" / "results.yaml").read_text())
    assert stored["best"]["params"] == {"model": "large", "a": 2.0, "b": float(LONG)}
    assert stored["decisions"]["b"]["value"] == float(LONG)
    assert stored["best"]["overrides"] == f"model=large b={LONG} a=2.0"


# ---------------------------------------------------------------- Hydra's launcher lines


def test_the_basic_launcher_says_launching_once_and_leaves_jobs_to_our_run_lines(chain):
    _, result = chain
    lines = log_messages(result.output)
    assert [line for line in lines if line.startswith("Launching")] == ["Launching 2 jobs locally"]
    assert not [line for line in lines if line.lstrip().startswith("#")]  # '\t#3 : b=...'
    assert len(result.run_lines) == 6


def test_optimize_mode_says_launching_once_not_per_trial(tmp_path):
    result = run_app(
        tmp_path,
        MLFLOW_OFF,
        "hydra.sweeper.mode=optimize",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.seed=0",
        "b=0.0_1.0",
        "hydra.sweep.dir=s",
    )
    assert result.returncode == 0, result.output
    assert result.output.count("Launching 1 jobs locally") == 1
    assert len(result.run_lines) == 3
    for line in result.run_lines:  # sampled floats as Ivory printed them
        [value] = re.findall(r" b=(\S+)", line)
        assert value == format(float(value), ".4g")


def test_another_launchers_lines_are_left_alone(tmp_path):
    result = run_app(tmp_path, MLFLOW_OFF, "hydra/launcher=joblib", "a=1-2", "hydra.sweep.dir=s")
    assert result.returncode == 0, result.output
    assert "Joblib.Parallel(" in result.output
    assert "#0 : a=1" in result.output and "#1 : a=2" in result.output


# ---------------------------------------------------------------- study names


def test_the_default_study_name_says_what_is_swept_and_resume_finds_it(tmp_path):
    args = (MLFLOW_OFF, "hydra.sweeper.mode=chain", "model=small,large", "a=1-2", "b=0.5")
    first = run_app(tmp_path, *args, "hydra.sweep.dir=s")
    assert first.returncode == 0, first.output
    name = announced(first.output)
    assert re.fullmatch(r"app-chain-model-a-[0-9a-f]{8}", name), name  # b is fixed
    assert is_sweep_study(name) and studies(tmp_path) == [name]
    again = run_app(tmp_path, *args, "hydra.sweep.dir=s")
    assert again.returncode == 0, again.output
    assert announced(again.output) == name
    assert "Every job of this sweep finished already: nothing to run" in again.output
    assert again.run_lines == []


def test_the_default_study_name_has_a_zipped_dimension_by_its_name_and_no_repeat(tmp_path):
    zipped = "hydra.sweeper.params.pair='zip(model=[small,large], b=[0.5,1.5])'"
    args = (MLFLOW_OFF, "a=1-2", zipped, "hydra.sweeper.repeat=[a]", "hydra.sweeper.dry_run=true")
    result = run_app(tmp_path, *args)
    assert result.returncode == 0, result.output
    assert re.fullmatch(r"app-product-pair-[0-9a-f]{8}", announced(result.output))


def test_a_study_under_the_previous_releases_default_name_resumes(tmp_path):
    args = (MLFLOW_OFF, "a=1-3", "hydra.sweep.dir=s")
    (tmp_path / "now").mkdir()
    name = announced(run_app(tmp_path / "now", *args).output)  # what this release names it
    digest = name.rsplit("-", 1)[1]
    previous = f"app-ivory-{digest}"  # what ivory-hydra 0.2 named the same sweep
    (tmp_path / "old").mkdir()
    old = run_app(tmp_path / "old", *args, f"hydra.sweeper.study_name={previous}")
    assert old.returncode == 0 and len(old.run_lines) == 3, old.output
    rerun = run_app(tmp_path / "old", *args)  # no study_name: the default finds it
    assert rerun.returncode == 0, rerun.output
    assert announced(rerun.output) == previous
    assert "Every job of this sweep finished already: nothing to run" in rerun.output
    assert rerun.run_lines == []
    assert studies(tmp_path / "old") == [previous]  # no study under the new name


# ---------------------------------------------------------------- the metric's name


NOTE = (
    "hydra.sweeper.metric=val_loss: run#0 returned a plain number, not a mapping: "
    "each job's returned number is taken as val_loss"
)


def test_a_plain_number_under_a_named_metric_is_said_once_at_the_first_job(tmp_path):
    args = (MLFLOW_OFF, "hydra.sweeper.metric=val_loss", "a=1-3", "hydra.sweep.dir=s")
    result = run_app(tmp_path, *args)
    assert result.returncode == 0, result.output
    assert result.output.count("returned a plain number") == 1
    [line] = [line for line in log_messages(result.output) if "plain number" in line]
    assert line == NOTE
    messages = log_messages(result.output)
    assert messages.index(NOTE) < messages.index("[run#1] a=2")  # at the first job
    assert "Best run: run#1, val_loss 0.5" in result.output


def test_a_mapping_that_names_the_metric_says_nothing(tmp_path):
    args = (MLFLOW_OFF, "hydra.sweeper.metric=loss", "ret=mapping", "a=1-2", "hydra.sweep.dir=s")
    result = run_app(tmp_path, *args)
    assert result.returncode == 0, result.output
    assert "plain number" not in result.output


# ---------------------------------------------------------------- the chain plot of repeats


SCORES = {  # tests/apps/repeats: each lr's five fold scores
    0.1: [0.1, 1.0, 1.0, 1.0, 1.0],
    0.01: [0.2, 0.3, 0.3, 0.3, 0.3],
    0.001: [0.9, 0.9, 0.9, 0.9, 0.9],
}


def test_a_chain_of_repeats_plots_each_aggregate_with_its_spread(tmp_path):
    result = run_app(
        tmp_path,
        MLFLOW_OFF,
        "hydra.sweeper.mode=chain",
        "hydra.sweeper.repeat=[fold]",
        "fold=0_4",
        "lr=0.1,0.01,0.001",
        "hydra.sweep.dir=s",
        app="repeats/app.py",
    )
    assert result.returncode == 0, result.output
    assert (tmp_path / "s" / "chain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Chain: lr is fixed at 0.01" in result.output
    # what the plot is drawn from: each configuration's aggregate and std, as stored
    [name] = studies(tmp_path)
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/optuna.db").trials
    by_lr = {t.params["lr"]: t for t in trials}
    values = list(SCORES)
    points = step_points(
        values,
        [by_lr[lr].value for lr in values],
        [by_lr[lr].user_attrs[TrialAttr.STD] for lr in values],
        numeric=True,
    )
    assert points.xs == [0.001, 0.01, 0.1]
    expected = [aggregate("mean", SCORES[x]) for x in points.xs]
    assert points.ys == pytest.approx([e.score for e in expected])
    assert points.errors == pytest.approx([statistics.stdev(SCORES[x]) for x in points.xs])
    assert points.ys == pytest.approx([0.9, 0.28, 0.82])

"""End-to-end: the ivory sweeper runs a real Hydra app in a subprocess (MLflow off here)."""

import itertools
import re
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import is_sweep_study

pytestmark = pytest.mark.slow


def load_study(storage_url):
    # the sweep is the only study: run and task numbers live in the ledger, not in a study
    [summary] = optuna.get_all_study_summaries(storage_url)
    return optuna.load_study(study_name=summary.study_name, storage=storage_url)


def study_names(storage_url):
    return [s.study_name for s in optuna.get_all_study_summaries(storage_url)]


def test_range_string_runs_six_jobs_and_says_which_stores_it_uses(sweep, tmp_path):
    result = sweep("a=1e-3_1e2:6.log")
    assert result.returncode == 0, result.output
    assert result.run_lines == [
        "[run#0] a=0.001",
        "[run#1] a=0.01",
        "[run#2] a=0.1",
        "[run#3] a=1",
        "[run#4] a=10",
        "[run#5] a=100",
    ]
    assert f"Optuna storage used by this sweep: sqlite:///{tmp_path}/optuna.db" in result.output
    assert f"optuna-dashboard sqlite:///{tmp_path}/optuna.db" in result.output


def test_product_order_is_itertools_product_in_argument_order(sweep, storage_url):
    result = sweep("b=0.1,0.2", "a=0-2", "model=small,large")
    assert result.returncode == 0, result.output
    expected = [
        f"b={b} a={a} model={m}"
        for b, a, m in itertools.product(["0.1", "0.2"], [0, 1, 2], ["small", "large"])
    ]
    assert [line.split("] ", 1)[1] for line in result.run_lines] == expected
    trials = load_study(storage_url).trials
    assert [t.user_attrs["overrides"] for t in trials][:2] == [
        "b=0.1 a=0 model=small",
        "b=0.1 a=0 model=large",
    ]


def test_study_trials_hold_what_the_contract_lists(sweep, storage_url, tmp_path):
    result = sweep("a=1-3", "b=0.5", "hydra.sweep.dir=out")
    assert result.returncode == 0, result.output
    study = load_study(storage_url)
    assert study.study_name.startswith("app-product-a-")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert [t.value for t in study.trials] == [2.0, 1.0, 2.0]
    assert [t.params for t in study.trials] == [{"b": 0.5, "a": a} for a in (1, 2, 3)]
    assert isinstance(study.trials[0].distributions["a"], optuna.distributions.IntDistribution)
    attrs = study.trials[1].user_attrs
    assert attrs["overrides"] == "a=2 b=0.5"  # in argument order
    assert attrs["run_name"] == "run#1"
    assert Path(attrs["output_dir"]) == tmp_path / "out" / "1"
    assert (Path(attrs["output_dir"]) / ".hydra" / "overrides.yaml").exists()
    assert study.user_attrs["definition"]["params"] == {
        "a": ["1", "2", "3"],
        "b": ["0.5"],
    }
    results = yaml.safe_load((tmp_path / "out" / "results.yaml").read_text())
    assert results["best"]["run"] == "run#1"
    assert results["best"]["params"] == {"b": 0.5, "a": 2}
    assert results["best"]["score"] == 1.0


def chain(sweep, *args):
    result = sweep("hydra.sweeper.mode=chain", *args)
    assert result.returncode == 0, result.output
    return [line.split("] ", 1)[1] for line in result.run_lines]


def test_chain_min_over_a_group_and_two_value_params(sweep):
    lines = chain(sweep, "model=small,large", "a=1-3", "b=0.3,0.1,0.2")
    assert lines == [
        "model=small",
        "model=large",
        "a=1 model=large",
        "a=2 model=large",
        "a=3 model=large",
        "b=0.3 model=large a=2",
        "b=0.1 model=large a=2",
        "b=0.2 model=large a=2",
    ]


def test_chain_max(sweep):
    lines = chain(sweep, "hydra.sweeper.direction=maximize", "model=small,large", "a=1-3")
    assert lines[2:] == ["a=1 model=small", "a=2 model=small", "a=3 model=small"]


def test_chain_ties_go_to_the_earliest(sweep):
    lines = chain(sweep, "model=large,huge", "a=0,4,2")  # large and huge tie; a=0 and 4 tie
    assert lines[2:] == ["a=0 model=large", "a=4 model=large", "a=2 model=large"]
    lines = chain(sweep, "a=0,4,3", "b=1,2")
    assert lines[3:] == ["b=1 a=3", "b=2 a=3"]
    lines = chain(sweep, "hydra.sweeper.direction=maximize", "a=4,0", "b=1,2")
    assert lines[2:] == ["b=1 a=4", "b=2 a=4"]


def test_chain_without_best_param_leaves_params_at_their_defaults(sweep):
    lines = chain(sweep, "hydra.sweeper.use_best_param=false", "model=small,large", "a=1,2")
    assert lines == ["model=small", "model=large", "a=1", "a=2"]


def test_chain_failed_and_nan_jobs_never_win(sweep, storage_url):
    result = sweep("hydra.sweeper.mode=chain", "a=2,1,3", "b=0,1", "fail_at=2")
    assert result.returncode == 1  # the failed job fails the sweep, at its end
    assert result.run_lines[3:] == [
        "[run#3] fail_at=2 b=0 a=1",
        "[run#4] fail_at=2 b=1 a=1",
    ]
    states = [t.state.name for t in load_study(storage_url).trials]
    assert states == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE"]


def test_mapping_return_with_metric(sweep, storage_url):
    result = sweep(
        "hydra.sweeper.metric=acc",
        "hydra.sweeper.direction=maximize",
        "a=1-3",
        "ret=mapping",
    )
    assert result.returncode == 0, result.output
    study = load_study(storage_url)
    assert [t.value for t in study.trials] == [-1.5, -0.5, -1.5]
    assert study.best_trial.params["a"] == 2
    assert study.metric_names == ["acc"]


def test_failed_job_does_not_stop_the_sweep_but_fails_it(sweep, storage_url):
    result = sweep("a=1-4", "fail_at=3")
    assert result.returncode == 1
    assert len(result.run_lines) == 4
    assert "1 of 4 jobs failed: run#2 (job 2: a=3 fail_at=3)" in result.output
    trials = load_study(storage_url).trials
    assert [t.state.name for t in trials] == [
        "COMPLETE",
        "COMPLETE",
        "FAIL",
        "COMPLETE",
    ]
    assert "planned failure at a=3" in trials[2].user_attrs["reason"]


def test_nan_score_is_a_failed_trial(sweep, storage_url):
    result = sweep("a=1,2", "ret=nan_score")
    assert result.returncode == 1
    assert [t.state.name for t in load_study(storage_url).trials] == ["FAIL", "FAIL"]


def test_jobs_that_return_nothing_finish_unscored(sweep, storage_url):
    result = sweep("a=1,2", "ret=none")
    assert result.returncode == 0, result.output
    assert [t.state.name for t in load_study(storage_url).trials] == [
        "PRUNED",
        "PRUNED",
    ]
    assert "No job reported a score." in result.output


def test_resume_runs_nothing_finished_and_reruns_failures(sweep, storage_url, tmp_path):
    first = sweep("hydra.sweeper.mode=chain", "a=1-4", "b=0,1", "fail_at=4")
    assert first.returncode == 1
    assert len(first.run_lines) == 6
    # The same command again: only the failed job runs again, with new numbers.
    second = sweep("hydra.sweeper.mode=chain", "a=1-4", "b=0,1", "fail_at=4")
    assert second.returncode == 1
    assert second.run_lines == ["[run#6] fail_at=4 a=4"]
    # Fixed, then resumed: nothing runs, and the chain decision stands.
    third = sweep("hydra.sweeper.mode=chain", "a=1-4", "b=0,1", "fail_at=4")
    assert third.run_lines == ["[run#7] fail_at=4 a=4"]
    study = load_study(storage_url)
    assert [t.number for t in study.trials] == list(range(8))
    decisions = study.user_attrs["decisions"]
    assert decisions["a"] == {"value": 2, "index": 1, "score": 0.5, "run": "run#1"}
    assert decisions["b"] == {"value": 0, "index": 0, "score": 0.5, "run": "run#4"}


def test_resume_of_a_finished_sweep_starts_no_job(sweep, tmp_path):
    assert sweep("a=1-3", "hydra.sweep.dir=one").returncode == 0
    again = sweep("a=1-3", "hydra.sweep.dir=two")
    assert again.returncode == 0, again.output
    assert again.run_lines == []
    assert "Launching" not in again.output
    assert not (tmp_path / "two" / "0").exists()
    assert yaml.safe_load((tmp_path / "two" / "results.yaml").read_text())["best"]["run"] == "run#1"


def test_job_numbers_continue_so_folders_are_never_overwritten(sweep, tmp_path, storage_url):
    assert sweep("a=1,2", "fail_at=2", "hydra.sweep.dir=out").returncode == 1
    assert sweep("a=1,2", "fail_at=null", "hydra.sweep.dir=out").returncode == 0
    # fail_at is part of the definition, so that is a new study; resume needs the same command
    assert sweep("a=1,2", "fail_at=2", "hydra.sweep.dir=out").returncode == 1
    # a job's folder is its run number, which goes on across studies of one experiment:
    # run#0-1 (first sweep), run#2-3 (second), run#4 (the failed job, run again)
    folders = sorted(int(p.name) for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert folders == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a=1-2-3-4"], "override 'a=1-2-3-4': invalid range string '1-2-3-4'"),
        (["a=1e-3_1e2:1.log"], "override 'a=1e-3_1e2:1.log'"),
        (["a=0-10-0"], "override 'a=0-10-0'"),
        (
            ["hydra.sweeper.mode=grid", "a=1,2"],
            "hydra.sweeper.mode: unknown mode 'grid'",
        ),
        (["hydra.sweeper.direction=up", "a=1,2"], "unknown direction 'up'"),
        (["nokey=1,2"], "Could not override 'nokey'"),
        (["a=1,2", "model=small,nosuch"], "nosuch"),
        (["a=interval(0,1)"], "interval() sweeps are continuous"),
    ],
)
def test_bad_input_fails_before_any_job_and_writes_nothing(sweep, tmp_path, args, message):
    result = sweep(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.run_lines == []
    assert not (tmp_path / "optuna.db").exists()
    assert not (tmp_path / "mlflow.db").exists()


def test_a_named_study_holds_one_sweep(sweep, tmp_path):
    assert sweep("a=1,2", "hydra.sweeper.study_name=mine").returncode == 0
    result = sweep("a=1,2,3", "b=0.5,1", "hydra.sweeper.study_name=mine")
    assert result.returncode == 1
    assert (
        "hydra.sweeper.study_name=mine: this study holds another sweep "
        "(it differs in param a, param b)"
    ) in result.stderr
    assert result.run_lines == []
    assert [
        t.params
        for t in optuna.load_study(
            study_name="mine", storage=f"sqlite:///{tmp_path}/optuna.db"
        ).trials
    ] == [{"a": 1}, {"a": 2}]


def test_a_bad_value_in_a_late_job_is_found_before_the_first_job(tmp_path):
    from conftest import run_app

    result = run_app(
        tmp_path,
        "hydra/sweeper=ivory",
        "hydra.sweeper.mlflow.enabled=false",
        "lr=0.1,0.2",
        "x=0-50,oops",
        app="sweep/typed.py",
    )
    assert result.returncode == 1
    assert "override 'x=oops' is not accepted by the job config" in result.stderr
    assert result.run_lines == []
    assert not (tmp_path / "optuna.db").exists()


def test_a_metric_missing_from_the_first_mapping_stops_the_sweep(sweep, tmp_path):
    result = sweep("hydra.sweeper.metric=f1", "a=1-5", "ret=mapping")
    assert result.returncode == 1
    assert (
        "hydra.sweeper.metric=f1: metric 'f1' is missing from the returned mapping" in result.stderr
    )
    assert len(result.run_lines) == 1
    # As for any bad input, the sweep leaves no study behind (its numbers stay taken).
    assert not [n for n in study_names(f"sqlite:///{tmp_path}/optuna.db") if is_sweep_study(n)]


def test_typed_config_takes_ranges_through_sweeper_params(tmp_path):
    from conftest import run_app

    direct = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "lr=1e-3_1e-1:3.log",
        app="sweep/typed.py",
    )
    assert direct.returncode == 1  # Hydra itself rejects a string for a float field
    result = run_app(
        tmp_path,
        "hydra/sweeper=ivory",
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.params.lr=1e-3_1e-1:3.log",
        "hydra.sweeper.params.x=-1_1",
        app="sweep/typed.py",
    )
    assert result.returncode == 0, result.output
    assert len(result.run_lines) == 9
    assert result.run_lines[0] == "[run#0] lr=0.001 x=-1"
    # the command line wins on the same key
    again = run_app(
        tmp_path,
        "hydra/sweeper=ivory",
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.params.lr=1e-3_1e-1:3.log",
        "lr=0.5",
        app="sweep/typed.py",
    )
    assert again.run_lines == ["[run#9] lr=0.5"]


def test_params_from_yaml_config(sweep, tmp_path):
    result = sweep("+hydra.sweeper.params={a: '1-3', model: [small, large]}")
    assert result.returncode == 0, result.output
    assert len(result.run_lines) == 6


def test_mixed_comma_list_and_quoted_values(sweep):
    result = sweep("b=1e-2_1:3.log,0.5", "+tag='3-7',x")
    assert result.returncode == 0, result.output
    assert [line.split("] ", 1)[1] for line in result.run_lines] == [
        f"b={b} tag={t}" for b in ("0.01", "0.1", "1", "0.5") for t in ("3-7", "x")
    ]


def test_max_batch_size(sweep):
    # joblib's launcher says each batch's size (the basic one says 'Launching' once)
    result = sweep("a=1-5", "hydra.sweeper.max_batch_size=2", "hydra/launcher=joblib")
    assert result.returncode == 0, result.output
    assert re.findall(r"is launching (\d+) jobs", result.output) == ["2", "2", "1"]


def test_joblib_launcher_in_chain_mode(sweep, storage_url):
    result = sweep(
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.mode=chain",
        "model=small,large",
        "a=1-3",
    )
    assert result.returncode == 0, result.output
    assert [line.split("] ", 1)[1] for line in result.run_lines][2:] == [
        "a=1 model=large",
        "a=2 model=large",
        "a=3 model=large",
    ]
    assert load_study(storage_url).best_trial.params == {"a": 2, "model": "large"}


def test_every_hydra_sweep_form(sweep):
    result = sweep("a=range(1,3)", "b=choice(0.5,1.5)", "model=glob(l*)")
    assert result.returncode == 0, result.output
    assert [line.split("] ", 1)[1] for line in result.run_lines] == [
        "model=large a=1 b=0.5",  # glob(l*) matched one option: a fixed value, printed first
        "model=large a=1 b=1.5",
        "model=large a=2 b=0.5",
        "model=large a=2 b=1.5",
    ]


def test_values_are_escaped_as_basic_sweeper_escapes_them(sweep, storage_url):
    result = sweep("a=1,2", "+msg='hello, world',x\\=y")
    assert result.returncode == 0, result.output
    trials = load_study(storage_url).trials
    assert [t.params["msg"] for t in trials] == ["hello, world", "x=y", "hello, world", "x=y"]
    # the job overrides are BasicSweeper's: split_arguments gives the same strings
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(["a=1,2", "+msg='hello, world',x\\=y"])
    [basic] = BasicSweeper.split_arguments(parsed, None)
    assert [t.user_attrs["overrides"] for t in trials] == [" ".join(job) for job in basic]


def test_journal_file_storage(sweep, tmp_path):
    journal = tmp_path / "sweep.log"
    result = sweep("a=1-3", f"hydra.sweeper.storage={journal}")
    assert result.returncode == 0, result.output
    assert f"optuna-dashboard {journal}" in result.output
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    [name] = [
        s.study_name
        for s in optuna.get_all_study_summaries(storage)
        if is_sweep_study(s.study_name)
    ]
    assert optuna.load_study(study_name=name, storage=storage).best_trial.params == {"a": 2}
    again = sweep("a=1-3", f"hydra.sweeper.storage={journal}")
    assert again.run_lines == []  # resume works on a journal too
    assert not (tmp_path / "optuna.db").exists()


def test_params_written_in_the_apps_yaml_and_the_command_line_wins(sweep):
    result = sweep("--config-name", "with_params")
    assert result.returncode == 0, result.output
    assert [line.split("] ", 1)[1] for line in result.run_lines] == [
        "a=0",
        "a=1",
        "a=2",
        "a=3",
        "b=0.5 a=2",
        "b=1.5 a=2",
        "model=small a=2 b=0.5",
        "model=large a=2 b=0.5",
    ]
    again = sweep("b=2.5", "--config-name", "with_params")  # overrides stay together
    assert again.returncode == 0, again.output
    assert [line.split("] ", 1)[1] for line in again.run_lines][-2:] == [
        "b=2.5 model=small a=2",  # one value: fixed, and printed first
        "b=2.5 model=large a=2",
    ]


def test_an_unusable_storage_is_named_without_its_password(sweep, tmp_path):
    result = sweep("a=1,2", "hydra.sweeper.storage=postgresql://me:hunter2@127.0.0.1:1/nowhere")
    assert result.returncode == 1
    assert (
        "hydra.sweeper.storage=postgresql://me:***@127.0.0.1:1/nowhere: "
        "cannot open this Optuna storage"
    ) in result.stderr
    assert "hunter2" not in result.output
    assert "Traceback" not in result.stderr
    assert result.run_lines == []
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_every_chain_trial_records_every_value_its_job_ran_with(sweep, storage_url):
    result = sweep("hydra.sweeper.mode=chain", "model=small,large", "a=1-3", "b=0.5,2.0")
    assert result.returncode == 0, result.output
    trials = load_study(storage_url).trials
    # before a param's step, its job ran at the config default (a: 0, b: 0.0, model: small)
    assert [t.params for t in trials[:2]] == [
        {"model": "small", "a": 0, "b": 0.0},
        {"model": "large", "a": 0, "b": 0.0},
    ]
    assert all(set(t.params) == {"model", "a", "b"} for t in trials)
    # the default a=0 lies outside 1..3: the distribution widens to keep it plotted
    assert trials[0].distributions["a"].low == 0 and trials[0].distributions["a"].high == 3
    # the run lines keep Ivory's form: only the params stepped so far
    assert result.run_lines[0] == "[run#0] model=small"


@pytest.mark.parametrize(("direction", "best"), [("minimize", 2), ("maximize", 0)])
def test_a_direction_list_of_one_means_that_direction(sweep, tmp_path, direction, best):
    """``direction: [minimize]`` once picked the worst run as best (issue 16)."""
    result = sweep(
        "a=0-3",
        "ret=mapping",
        f"hydra.sweeper.direction=[{direction}]",
        "hydra.sweeper.metric=[loss]",
        "hydra.sweep.dir=s",
    )
    assert result.returncode == 0, result.output
    stored = yaml.safe_load((tmp_path / "s/results.yaml").read_text())
    assert stored["best"]["params"]["a"] == best
    assert stored["direction"] == direction and stored["metric"] == "loss"

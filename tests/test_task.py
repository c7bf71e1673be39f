"""The task API against the seed page and contract section 2, on real SQLite storages."""

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import ivory_hydra as ivory

SEED = Path(__file__).parent / "seed_transcript.py"
SEED_LINES = """\
[run#0] fold=0 factor=0.5
[run#1] fold=0 factor=0.7
[run#2] fold=1 factor=0.5
[run#3] fold=1 factor=0.7
[run#4] lr=0.0001 fold=0 factor=0.5
[run#5] lr=0.0001 fold=0 factor=0.7
[run#6] lr=0.0001 fold=1 factor=0.5
[run#7] lr=0.0001 fold=1 factor=0.7
[run#8] batch_size=32 fold=0
[run#9] batch_size=32 fold=1
[run#10] batch_size=32 factor=0.5
[run#11] batch_size=32 factor=0.7
[run#12] batch_size=32 lr=0.0001
[run#13] batch_size=32 lr=0.001
[run#14] fold=0
[run#15] fold=1
[run#16] factor=0.5 fold=0
[run#17] factor=0.7 fold=0
[run#18] lr=0.0001 fold=0 factor=0.5
[run#19] lr=0.001 fold=0 factor=0.5
""".splitlines()


@pytest.fixture
def client(tmp_path):
    return ivory.create_client(tmp_path / "examples", mlflow=False)


def run_seed(directory):
    return subprocess.run(
        [sys.executable, str(SEED), str(directory)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def test_seed_transcript_prints_the_seed_run_by_run(tmp_path):
    lines = run_seed(tmp_path)
    assert lines[0] == "Task(name='task#0', experiment='torch', study_name='torch.task#0')"
    assert [line for line in lines if line.startswith("[run#")] == SEED_LINES


def test_the_client_says_where_its_stores_are_on_stderr(tmp_path, capsys):
    ivory.create_client(tmp_path)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"Optuna storage used by this client: sqlite:///{tmp_path}/optuna.db" in captured.err
    assert (
        f"MLflow tracking store used by this client: sqlite:///{tmp_path}/mlflow.db" in captured.err
    )


def test_a_second_process_continues_the_numbering(tmp_path):
    run_seed(tmp_path)
    lines = [line for line in run_seed(tmp_path) if line.startswith("[run#")]
    assert lines[0] == "[run#20] fold=0 factor=0.5"
    assert lines[-1] == "[run#39] lr=0.001 fold=0 factor=0.5"
    storage = f"sqlite:///{tmp_path}/optuna.db"
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    assert {f"torch.task#{k}" for k in range(1, 5)} <= names
    assert {f"torch.task#{k}" for k in range(6, 10)} <= names  # task#5 is the repr'd one


def test_runs_are_trials_with_params_and_scores(client):
    task = client.create_task("torch")
    for run in task.product(fold=range(2), factor=[0.5, 0.7], lr=1e-4, verbose=0):
        assert run.params["lr"] == 1e-4
        run.report(run.params["fold"] + run.params["factor"])
    assert run.name == "run#3"
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    assert [t.value for t in study.trials] == [0.5, 0.7, 1.5, 1.7]
    assert study.trials[1].params == {"lr": 1e-4, "fold": 0, "factor": 0.7}
    assert study.trials[1].user_attrs["run_name"] == "run#1"
    assert study.user_attrs["task"] == "task#0"
    assert study.user_attrs["kind"] == "task" and study.user_attrs["experiment"] == "torch"


def test_run_params_match_the_contract(client, capsys):
    task = client.create_task("torch")
    runs = list(task.product(fold=range(2), factor=[0.5, 0.7], lr=1e-4, verbose=0))
    assert runs[0].params == {"lr": 0.0001, "fold": 0, "factor": 0.5}
    assert list(runs[0].params) == ["lr", "fold", "factor"]
    assert capsys.readouterr().out.splitlines()[0] == "[run#0] lr=0.0001 fold=0 factor=0.5"


def chain_values(client, scores, **kwargs):
    """Run a chain where each run reports scores[(param, value)]; return the runs' params."""
    task = client.create_task("chain")
    seen = []
    for run in task.chain(verbose=0, **kwargs):
        seen.append(run.params)
        name = next(iter(run.params))
        score = scores.get((name, run.params[name]), "unreported")
        if score != "unreported":
            run.report(score)
    return seen


def test_chain_min_picks_the_smallest_score(client):
    scores = {
        ("a", 1): 0.5,
        ("a", 2): 0.1,
        ("a", 3): 0.3,
        ("b", 10): 0.2,
        ("b", 20): 0.4,
    }
    seen = chain_values(client, scores, a=[1, 2, 3], b=[10, 20], c=[7, 8])
    assert seen[3:] == [
        {"b": 10, "a": 2},
        {"b": 20, "a": 2},
        {"c": 7, "a": 2, "b": 10},
        {"c": 8, "a": 2, "b": 10},
    ]


def test_chain_max_picks_the_largest_score(client):
    scores = {("a", 1): 0.5, ("a", 2): 0.1, ("a", 3): 0.3}
    seen = chain_values(client, scores, a=[1, 2, 3], b=[10, 20], direction="maximize")
    assert seen[3] == {"b": 10, "a": 1}


def test_chain_ties_go_to_the_earliest_not_the_last_as_in_ivory(client):
    scores = {("a", 1): 0.5, ("a", 2): 0.2, ("a", 3): 0.2}
    assert chain_values(client, scores, a=[1, 2, 3], b=[10, 20])[3]["a"] == 2
    tied = {("a", 1): 0.2, ("a", 2): 0.2, ("a", 3): 0.2}
    assert chain_values(client, tied, a=[1, 2, 3], b=[10, 20])[3]["a"] == 1
    assert chain_values(client, tied, a=[1, 2, 3], b=[10, 20], direction="maximize")[3]["a"] == 1


def test_chain_nan_and_missing_scores_never_win(client):
    scores = {("a", 1): float("nan"), ("a", 3): 0.9}  # a=2 never reports
    assert chain_values(client, scores, a=[1, 2, 3], b=[10, 20])[3]["a"] == 3
    assert chain_values(client, scores, a=[1, 2, 3], b=[10, 20], direction="maximize")[3]["a"] == 3


def test_chain_with_no_score_uses_the_first_value(client):
    assert chain_values(client, {}, a=[1, 2, 3], b=[10, 20])[3] == {"b": 10, "a": 1}


def test_chain_reads_a_mapping_with_metric(client):
    task = client.create_task("chain")
    seen = []
    for run in task.chain(a=[1, 2], b=[5, 6], metric="acc", direction="maximize", verbose=0):
        seen.append(run.params)
        run.report(
            {
                "acc": run.params.get("a", 0) * 0.1 if "b" not in run.params else 0.0,
                "loss": 1.0,
            }
        )
    assert seen[2] == {"b": 5, "a": 2}


def test_trial_states_for_nan_unreported_and_failed_runs(client):
    task = client.create_task("states")
    with pytest.raises(RuntimeError, match="boom"):
        for run in task.chain(a=[1, 2, 3, 4], verbose=0):
            if run.params["a"] == 1:
                run.report(float("nan"))
            elif run.params["a"] == 3:
                run.report(0.5)
            elif run.params["a"] == 4:
                raise RuntimeError("boom")  # the loop body fails during this run
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "PRUNED", "COMPLETE", "FAIL"]
    assert study.trials[0].user_attrs["reason"] == "score is nan"
    assert "stopped" in study.trials[3].user_attrs["reason"]
    assert math.isclose(study.best_value, 0.5)


def test_progress_bar_is_hidden_by_verbose_0_but_lines_are_not(client, capsys):
    for _ in client.create_task("v").product(a=[1, 2], verbose=0):
        pass
    captured = capsys.readouterr()
    assert captured.out == "[run#0] a=1\n[run#1] a=2\n"
    assert "%" not in captured.err


def test_bad_input(client):
    with pytest.raises(ValueError, match="unknown direction 'up'"):
        client.create_task("x").chain(a=[1, 2], direction="up")
    with pytest.raises(ValueError, match="param 'a' has no values"):
        client.create_task("x").product(a=[])
    with pytest.raises(ValueError, match="experiment name"):
        client.create_task("")


@pytest.mark.slow
def test_tasks_and_runs_are_mirrored_to_mlflow(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    client = ivory.create_client(tmp_path)
    task = client.create_task("torch")
    for run in task.chain(lr=[0.1, 0.01], fold=[0, 1], metric="loss", verbose=0):
        assert mlflow.active_run().info.run_id == run.mlflow_run_id
        if "fold" not in run.params:
            mlflow.log_metric("loss", run.params["lr"] * 10)  # logged, not reported
        else:
            run.report({"loss": run.params["fold"] + 0.5})
    assert mlflow.active_run() is None
    store = MlflowClient(client.tracking_uri)
    experiment = store.get_experiment_by_name("torch")
    runs = store.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.run_name == "task#0"
    assert sorted(r.info.run_name for r in children) == ["run#0", "run#1", "run#2", "run#3"]
    assert {r.info.status for r in [parent, *children]} == {"FINISHED"}
    # the chain used the logged metric: lr=0.01 (loss 0.1) won
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    assert [t.value for t in study.trials] == [1.0, 0.1, 0.5, 1.5]
    assert study.trials[2].params == {"fold": 0, "lr": 0.01}
    assert study.trials[2].user_attrs["mlflow_run_id"] in {r.info.run_id for r in children}


def test_trial_distributions_span_every_value_of_the_sweep(client):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    task = client.create_task("dists")
    for run in task.product(fold=range(3), lr=ivory.Range("1e-3_1e-1:3.log"), tag="a", verbose=0):
        run.report(1.0)
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    # every trial has the whole value space, as optuna-dashboard needs to plot them
    assert {str(t.distributions) for t in study.trials} == {str(study.trials[0].distributions)}
    assert study.trials[0].distributions == {
        "tag": CategoricalDistribution(["a"]),
        "fold": IntDistribution(0, 2),
        "lr": FloatDistribution(0.001, 0.1, log=True),
    }


def test_an_unusable_storage_fails_at_create_client_without_its_password(tmp_path):
    with pytest.raises(
        ValueError, match=r"storage=postgresql://me:\*\*\*@127.0.0.1:1/x: cannot open"
    ) as info:
        ivory.create_client(tmp_path, storage="postgresql://me:hunter2@127.0.0.1:1/x", mlflow=False)
    assert "hunter2" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written


def states(client, task):
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    return [t.state.name for t in study.trials]


def test_report_takes_numbers_only(client):
    task = client.create_task("report")
    for run in task.product(a=[1, 2, 3, 4], verbose=0):
        for bad in ("abc", [1.0, "x"], {"loss": "high"}, None, True, {}):
            with pytest.raises(TypeError, match="report"):
                run.report(bad)
        good = {1: 0.5, 2: [1.5], 3: {"loss": 2.5}, 4: 3}[run.params["a"]]
        run.report(good)
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    # a one-element sequence is the score of a one-objective task; a mapping needs a metric
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert [t.value for t in study.trials] == [0.5, 1.5, None, 3.0]


def test_intermediate_values_are_recorded(client):
    task = client.create_task("steps")
    for run in task.product(a=[1, 2], verbose=0):
        for step in range(3):
            run.report(0.1 * step + run.params["a"], step=step)
        assert run.should_prune() is False
        with pytest.raises(TypeError, match="step"):
            run.report(1.0, step=-1)
        run.report(run.params["a"])
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    assert study.trials[1].intermediate_values == {0: 2.0, 1: 2.1, 2: 2.2}


def test_break_finishes_the_task_and_leaves_nothing_running(client):
    task = client.create_task("brk")
    for run in task.product(a=[1, 2, 3], verbose=0):
        run.report(0.5)
        break
    assert states(client, task) == ["COMPLETE"]
    # an unreported run that the loop left by break: it never finished its work
    runs = task.client.create_task("brk2").product(a=[1, 2, 3], verbose=0)
    for _run in runs:
        break
    runs.close()  # what the garbage collector does when the loop's iterator goes away
    study = optuna.load_study(study_name="brk2.task#0", storage=client.storage_url)
    assert [t.state.name for t in study.trials] == ["FAIL"]
    assert "loop stopped" in study.trials[0].user_attrs["reason"]
    assert study.user_attrs["summary"]["runs"] == {"fail": 1}


@pytest.mark.slow
def test_break_with_the_iterator_still_referenced_ends_at_exit(tmp_path):
    """The loop is left by break while ``runs`` still holds the iterator; the process exits."""
    script = f"""
import ivory_hydra as ivory
client = ivory.create_client({str(tmp_path)!r})
runs = client.create_task("held").product(a=[1, 2, 3], verbose=0)
for run in runs:
    run.report(1.0)
    break
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    from mlflow.tracking import MlflowClient

    study = optuna.load_study(study_name="held.task#0", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]
    store = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = store.get_experiment_by_name("held")
    runs = store.search_runs([experiment.experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [
        ("run#0", "FINISHED"),
        ("task#0", "FINISHED"),
    ]


def test_only_tasks_are_studies(client):
    for run in client.create_task("one").product(a=[1, 2], verbose=0):
        run.report(1.0)
    for run in client.create_task("two").chain(a=[1, 2], verbose=0):
        run.report(1.0)
    names = {s.study_name for s in optuna.get_all_study_summaries(client.storage_url)}
    assert names == {"one.task#0", "two.task#0"}  # numbering is not a study


def sphere_distance(client, sampler, trials=40):
    task = client.create_task("sphere")
    for run in task.optimize(
        trials, sampler=sampler, x=ivory.Range("-5.0_5.0"), y=ivory.Range("-5.0_5.0"), verbose=0
    ):
        run.report((run.params["x"] - 1.5) ** 2 + (run.params["y"] + 0.5) ** 2)
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    assert len(study.trials) == trials
    return math.dist((study.best_params["x"], study.best_params["y"]), (1.5, -0.5))


@pytest.mark.slow
def test_tpe_lands_near_an_off_centre_minimum_that_random_search_misses(client):
    tpe = [sphere_distance(client, optuna.samplers.TPESampler(seed=s)) for s in (1, 2, 3)]
    rand = [sphere_distance(client, optuna.samplers.RandomSampler(seed=s)) for s in (1, 2, 3)]
    assert max(tpe) < 0.5, (tpe, rand)
    assert sum(r > max(tpe) for r in rand) >= 2, (tpe, rand)


def test_optimize_spaces_and_resumable_numbers(client):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    task = client.create_task("spaces")
    runs = task.optimize(
        6,
        sampler=optuna.samplers.RandomSampler(seed=0),
        lr=optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True),
        x=ivory.Range("-1.0_1.0"),
        depth=ivory.Range(2, 8, 2),
        width=ivory.Range(0.0, 1.0, num=3),
        act=["relu", "gelu"],
        dropout=optuna.distributions.FloatDistribution(0.0, 0.5),
        seed=7,
        verbose=0,
    )
    seen = []
    for run in runs:
        seen.append(run.params)
        run.report(run.params["lr"])
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    assert study.trials[0].distributions == {
        "seed": IntDistribution(7, 7),
        "lr": FloatDistribution(1e-5, 0.1, log=True),
        "x": FloatDistribution(-1.0, 1.0),
        "depth": IntDistribution(2, 8, step=2),
        "width": CategoricalDistribution([0.0, 0.5, 1.0]),
        "act": CategoricalDistribution(["relu", "gelu"]),
        "dropout": FloatDistribution(0.0, 0.5),
    }
    assert all(p["seed"] == 7 and p["depth"] in (2, 4, 6, 8) for p in seen)
    assert task.best.score == min(p["lr"] for p in seen)
    with pytest.raises(ValueError, match="n_trials"):
        client.create_task("x").optimize(0, x=[1, 2])
    with pytest.raises(ValueError, match="search space"):
        client.create_task("x").optimize(3, x=1)


def test_pruning_in_the_task_api(client):
    task = client.create_task("prune")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    for run in task.optimize(
        5,
        sampler=optuna.samplers.GridSampler({"a": [0, 1, 2, 5, 6]}),
        pruner=pruner,
        a=[0, 1, 2, 5, 6],
        verbose=0,
    ):
        for step in range(3):
            run.report((run.params["a"] - 1) ** 2 + 1 / (step + 1), step=step)
            if run.should_prune():
                break
        else:
            run.report((run.params["a"] - 1) ** 2)
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    states = {t.params["a"]: t.state.name for t in study.trials}
    assert "PRUNED" in states.values() and states[1] == "COMPLETE"
    for trial in study.trials:
        if trial.state.name == "PRUNED":  # it keeps its last reported value
            assert trial.value == trial.intermediate_values[max(trial.intermediate_values)]


@pytest.mark.parametrize(("direction", "best"), [("minimize", 2), ("maximize", 0)])
def test_optimize_with_a_direction_list_of_one_means_that_direction(client, direction, best):
    """``task.optimize(direction=["minimize"])`` once picked the worst run (issue 16)."""
    grid = optuna.samplers.GridSampler({"x": [0, 1, 2, 3]})
    task = client.create_task("directions")
    for run in task.optimize(4, sampler=grid, direction=[direction], x=[0, 1, 2, 3], verbose=0):
        run.report((run.params["x"] - 2) ** 2)
    assert task.best.params["x"] == best

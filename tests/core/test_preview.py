"""The plan preview's text, from plans and progress alone (pure, no stores)."""

import time

from ivory_hydra.core.plan import Plan, Point
from ivory_hydra.core.preview import Progress, ends, plan_lines, step_jobs, to_run
from ivory_hydra.core.zipped import rows_of


def show(point: Point, repeat: int | None) -> str:
    return " ".join(f"{k}={v}" for k, v in point.params.items())


def test_a_trillion_job_product_is_previewed_from_its_ends_only():
    values = list(range(10**6))
    plan = Plan("product", {}, {"a": values, "b": values})
    started = time.perf_counter()
    lines = plan_lines(plan, show)
    assert time.perf_counter() - started < 1.0
    assert lines[0] == "Product of 1,000,000,000,000 jobs, 1,000,000,000,000 to run:"
    width = len("#999999999999")
    assert lines[1:3] == [f"  {'#0':{width}}  a=0 b=0", f"  {'#1':{width}}  a=0 b=1"]
    assert lines[6] == "  ... 999,999,999,990 more ..."
    assert lines[-1] == "  #999999999999  a=999999 b=999999"


def test_finished_slots_are_left_out_and_failed_ones_run_again():
    plan = Plan("product", {}, {"a": list(range(20))})
    done = {f"0.{i}" for i in range(20) if i not in (3, 17)}
    lines = plan_lines(plan, show, Progress(done=done, failed={"0.17": "run#17"}))
    assert lines == [
        "Product of 20 jobs, 2 to run (18 finished, left out):",
        "  #3   a=3",
        "  #17  a=17  (runs again: run#17 failed)",
        "Left out (finished): #0, #1, #2, #4, #5, ... 8 more ..., #14, #15, #16, #18, #19",
    ]


def test_a_chain_lists_the_steps_it_can_and_names_the_decisions_that_stand():
    rows = rows_of("arch", [("model", ["resnet", "vit"]), ("lr", [0.1, 0.01])])
    plan = Plan("chain", {}, {"arch": rows, "seed": [0, 1], "bs": [8, 16]})
    fresh = plan_lines(plan, show)
    assert fresh == [
        "Chain (3 steps) of 6 jobs, 6 to run:",
        "Step 0, arch: 2 jobs, 2 to run:",
        "  #0.0  model=resnet lr=0.1",
        "  #0.1  model=vit lr=0.01",
        "Step 1, seed: 2 jobs (0, 1), each at the winners of the steps before it",
        "Step 2, bs: 2 jobs (8, 16), each at the winners of the steps before it",
    ]
    progress = Progress(
        done={"0.0", "0.1", "1.0"},
        winners={"arch": rows[1]},
        decided={"arch": "model=vit lr=0.01 (run#1, score 0.2)"},
    )
    assert plan_lines(plan, show, progress) == [
        "Chain (3 steps) of 6 jobs, 3 to run (3 finished, left out):",
        "Step 0, arch: 2 jobs, decided: model=vit lr=0.01 (run#1, score 0.2)",
        "Step 1, seed: 2 jobs, 1 to run:",
        "  #1.1  seed=1 model=vit lr=0.01",
        "Step 2, bs: 2 jobs (8, 16), each at the winners of the steps before it",
        "Left out (finished): #0.0, #0.1, #1.0",
    ]


def test_a_decided_chain_step_lists_its_failed_jobs_they_run_again():
    """A decision made while a job of its step failed stands; the job runs again on
    resume, as a failed job of any step does (and as the sweep does)."""
    plan = Plan("chain", {}, {"a": [1, 2, 3], "b": [10, 20]})
    progress = Progress(
        done={"0.0", "0.2", "1.0", "1.1"},
        failed={"0.1": "run#1"},
        winners={"a": 1, "b": 10},
        decided={"a": "a=1 (run#0, score 1)", "b": "b=10 (run#3, score 1.1)"},
    )
    assert to_run(plan, 0, progress) == 1
    assert plan_lines(plan, show, progress) == [
        "Chain (2 steps) of 5 jobs, 1 to run (4 finished, left out):",
        "Step 0, a: 3 jobs, decided: a=1 (run#0, score 1), 1 to run:",
        "  #0.1  a=2  (runs again: run#1 failed)",
        "Step 1, b: 2 jobs, decided: b=10 (run#3, score 1.1)",
        "Left out (finished): #0.0, #0.2, #1.0, #1.1",
    ]


def test_repeats_that_finished_are_kept_and_only_the_missing_ones_listed():
    plan = Plan("product", {}, {"lr": [0.1, 0.01]}, repeats=({"fold": 0}, {"fold": 1}))
    progress = Progress(done={"0.0"}, kept={"0.1": {0}})
    assert to_run(plan, 0, progress) == 1
    jobs = [(p.params, r) for p, r in step_jobs(plan, 0, progress)]
    assert jobs == [({"lr": 0.01}, 1)]
    lines = plan_lines(
        plan, lambda p, r: show(Point(0, 0, plan.repeat_params(p, r)), None), progress
    )
    assert lines == [
        "Product of 4 jobs, 1 to run (3 finished, left out):",
        "  #1/1  lr=0.01 fold=1",
        "Left out (finished): #0",
    ]


def test_optimize_shows_n_trials_what_is_fixed_and_the_space():
    plan = Plan("optimize", {"bs": 32}, {}, trials=10)
    space = {"arch": ["model=resnet lr=0.1", "model=vit lr=0.01"], "wd": ["float 0.0..0.1"]}
    lines = plan_lines(plan, show, Progress(done={"0.0", "0.1", "0.2"}), space)
    assert lines == [
        "Optimize: 10 trials (n_trials), 3 done, 7 to sample (7 jobs)",
        "Every job gets: bs=32",
        "The sampler picks each trial's values of:",
        "  arch  model=resnet lr=0.1 | model=vit lr=0.01",
        "  wd    float 0.0..0.1",
    ]


def test_ends_reads_only_what_it_shows():
    read = []

    def numbers(order):
        for n in order:
            read.append(n)
            yield n

    first, between, last = ends(numbers(range(100)), numbers(range(99, -1, -1)), 100, 2, 2)
    assert (first, between, last) == ([0, 1], 96, [98, 99])
    assert sorted(read) == [0, 1, 98, 99]

import itertools

import pytest

from ivory_hydra.core.plan import Plan, check_mode, split_params
from ivory_hydra.core.ranges import Range


def test_product_is_itertools_product_in_argument_order():
    plan = Plan.from_params("product", {"a": [1, 2], "b": "x", "c": [3, 4, 5]})
    params = [p.params for p in plan.points(0)]
    expected = [{"b": "x", "a": a, "c": c} for a, c in itertools.product([1, 2], [3, 4, 5])]
    assert params == expected
    assert [list(p) for p in params][0] == ["b", "a", "c"]  # fixed first, then swept
    assert plan.total == 6 and plan.num_steps == 1


def test_strings_are_single_values_and_ranges_sweep():
    fixed, swept = split_params({"date": "2020-06", "fold": Range("3-7"), "k": (1,)})
    assert fixed == {"date": "2020-06", "k": 1}
    assert swept == {"fold": [3, 4, 5, 6, 7]}


def test_chain_steps_one_param_at_a_time_leaving_later_params_absent():
    plan = Plan.from_params(
        "chain",
        {"fold": range(2), "factor": [0.5, 0.7], "bs": 32},
        use_best_param=False,
    )
    assert plan.num_steps == 2 and plan.total == 4
    assert [p.params for p in plan.points(0)] == [
        {"bs": 32, "fold": 0},
        {"bs": 32, "fold": 1},
    ]
    assert [p.params for p in plan.points(1, {"fold": 1})] == [
        {"bs": 32, "factor": 0.5},
        {"bs": 32, "factor": 0.7},
    ]


def test_chain_with_best_param_carries_winners_after_the_stepping_param():
    plan = Plan.from_params("chain", {"a": [1, 2], "b": [3, 4], "c": [5, 6]})
    points = plan.points(2, {"a": 2, "b": 3})
    assert [list(p.params.items()) for p in points] == [
        [("c", 5), ("a", 2), ("b", 3)],
        [("c", 6), ("a", 2), ("b", 3)],
    ]
    # a winner not decided yet falls back to the first value
    assert next(plan.points(1, {})).params == {"b": 3, "a": 1}


def test_slots_are_unique_across_the_plan():
    plan = Plan.from_params("chain", {"a": [1, 1], "b": [2, 2]})
    slots = [p.slot for s in range(plan.num_steps) for p in plan.points(s)]
    assert len(slots) == len(set(slots)) == 4


def test_bad_input():
    with pytest.raises(ValueError, match="unknown mode 'grid'"):
        check_mode("grid")
    with pytest.raises(ValueError, match="param 'x' has no values"):
        Plan.from_params("product", {"x": []})
    with pytest.raises(IndexError):
        list(Plan.from_params("product", {"x": [1, 2]}).points(1))
    with pytest.raises(IndexError):
        Plan.from_params("product", {"x": [1, 2]}).point(0, 2)


def test_a_million_point_plan_is_computed_point_by_point():
    import itertools
    import tracemalloc

    values = list(range(1000))
    tracemalloc.start()
    plan = Plan.from_params("product", {"lr": values, "fold": values})
    assert plan.total == 1_000_000
    assert plan.point(0, 999_999).params == {"lr": 999, "fold": 999}
    assert plan.point(0, 1234).params == {"lr": 1, "fold": 234}
    first = list(itertools.islice(plan.points(0), 3))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [p.params["fold"] for p in first] == [0, 1, 2]
    assert peak < 5_000_000  # bytes: nothing proportional to the million points


def test_point_by_index_is_the_product_order():
    import itertools

    swept = {"a": [1, 2, 3], "b": ["x", "y"], "c": [0.5, 0.7]}
    plan = Plan("product", {"k": 9}, swept)
    expected = [
        dict(zip(swept, combo, strict=True)) for combo in itertools.product(*swept.values())
    ]
    assert [plan.point(0, i).params for i in range(plan.total)] == [{"k": 9, **e} for e in expected]

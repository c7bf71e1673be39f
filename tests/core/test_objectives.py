"""Objectives: one direction or several, and the metrics they are read from."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivory_hydra.core.objectives import Objectives


@pytest.mark.parametrize(
    ("scores", "direction", "expected"),
    [
        ([0.3, 0.1, 0.2], "minimize", 1),
        ([0.3, 0.1, 0.2], "maximize", 0),
        (
            [0.1, 0.1, 0.1],
            "minimize",
            0,
        ),  # ties go to the earliest (Ivory picked the last)
        ([0.5, 0.1, 0.1], "minimize", 1),
        ([0.9, 0.9], "maximize", 0),
        ([None, 0.4, float("nan")], "minimize", 1),
        ([float("nan"), None], "maximize", None),
        ([float("-inf"), 2.0], "minimize", 1),  # infinities are not scores
        ([], "minimize", None),
    ],
)
def test_best_index(scores, direction, expected):
    assert Objectives.of(direction).best_index(scores) == expected
    assert Objectives.of([direction]).best_index(scores) == expected  # a list of one


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), max_size=12))
def test_best_index_never_picks_a_missing_or_nan_score(scores):
    for direction in ("minimize", "maximize"):
        index = Objectives.of(direction).best_index(scores)
        finite = [s for s in scores if s is not None and math.isfinite(s)]
        if not finite:
            assert index is None
            continue
        assert index is not None
        target = min(finite) if direction == "minimize" else max(finite)
        assert scores[index] == target
        assert index == next(i for i, s in enumerate(scores) if s == target)


def test_a_list_of_one_direction_means_that_direction():
    """``direction: [minimize]`` picked the worst run as best (issue 16)."""
    for direction in ("minimize", "maximize"):
        one = Objectives.of([direction], ["loss"])
        assert one == Objectives.of(direction, "loss")
        assert one.single and one.direction == direction and one.metric == "loss"
        assert one.better(0.1, 0.9) is (direction == "minimize")
        assert one.stored == {"direction": direction, "metric": "loss"}


def test_several_objectives():
    two = Objectives.of(["minimize", "maximize"], ["loss", "acc"])
    assert not two.single and two.count == 2 and two.metric is None
    assert two.metric_arg == ["loss", "acc"] and two.metric_names == ["loss", "acc"]
    assert two.stored == {"direction": ["minimize", "maximize"], "metric": ["loss", "acc"]}
    assert Objectives.of(["minimize", "minimize"]).metric_names == ["score_0", "score_1"]


@pytest.mark.parametrize(
    ("direction", "metric", "message"),
    [
        ("min", None, "unknown direction 'min'"),
        ([], None, "direction: give minimize or maximize"),
        (3, None, "direction: give a name or a list of names"),
        (["minimize", "max"], None, "unknown direction 'max'"),
        ("minimize", ["a", "b"], "metric: 2 names for 1 directions"),
        ("minimize", "", "metric: names are non-empty strings"),
    ],
)
def test_bad_input_names_what_is_wrong(direction, metric, message):
    with pytest.raises(ValueError, match=message):
        Objectives.of(direction, metric)

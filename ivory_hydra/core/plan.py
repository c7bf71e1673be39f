"""Product and chain plans: which params each run gets, and which value wins.

Pure: no I/O, and no Hydra, Optuna or MLflow. Values are opaque to the plan, so
the task API passes Python values and the sweeper passes parsed overrides.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivory_hydra.core.zipped import flatten

MODES = ("product", "chain", "optimize")


@dataclass(frozen=True)
class Point:
    """The params of one run, in the order they are printed.

    ``step`` is the chain step (always 0 in product mode) and ``index`` the
    run's position inside it; together they name the run's ``slot``, which a
    resumed sweep uses to find what already ran.

    >>> Point(1, 0, {"factor": 0.5}).slot
    '1.0'
    """

    step: int
    index: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def slot(self) -> str:
        """The run's stable place in the plan, ``"<step>.<index>"``."""
        return f"{self.step}.{self.index}"


def parse_slot(slot: str) -> tuple[int, int]:
    """The step and index of a slot (see :attr:`Point.slot`).

    >>> parse_slot("2.5")
    (2, 5)
    """
    step, _, index = str(slot).partition(".")
    return int(step), int(index)


def split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, list]]:
    """Split params into fixed values and swept value lists, keeping their order.

    A string is always one value; any other iterable is a list of values, and a
    list of one value is fixed.

    >>> split_params({"fold": range(2), "lr": 1e-4, "date": "2020-06", "k": [3]})
    ({'lr': 0.0001, 'date': '2020-06', 'k': 3}, {'fold': [0, 1]})
    >>> split_params({"x": []})
    Traceback (most recent call last):
    ...
    ValueError: param 'x' has no values to sweep
    """
    fixed: dict[str, Any] = {}
    swept: dict[str, list] = {}
    for name, value in params.items():
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            fixed[name] = value
            continue
        values = list(value)
        if not values:
            raise ValueError(f"param {name!r} has no values to sweep")
        if len(values) == 1:
            fixed[name] = values[0]
        else:
            swept[name] = values
    return fixed, swept


def _check_choice(kind: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        quoted = [repr(c) for c in choices]
        options = ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]
        raise ValueError(f"unknown {kind} {value!r}: use {options}")
    return value


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is ``product``, ``chain`` or ``optimize``, else raise.

    >>> check_mode("grid")
    Traceback (most recent call last):
    ...
    ValueError: unknown mode 'grid': use 'product', 'chain' or 'optimize'
    """
    return _check_choice("mode", mode, MODES)


@dataclass(frozen=True)
class Plan:
    """A product or chain plan over fixed values and swept value lists.

    Product mode has one step holding every combination; chain mode has one
    step per swept param. Points are computed on demand, so a plan of a
    million runs costs no more memory than its value lists: ``point(step,
    index, winners)`` gives one run, ``points(step, winners)`` iterates a step,
    where ``winners`` holds the values already chosen for earlier chain params.
    A zipped dimension's values are rows (:class:`~ivory_hydra.core.zipped.Row`):
    a point holds each row's members in its place, never the dimension's name.

    >>> plan = Plan("product", {"lr": 1e-4}, {"fold": [0, 1], "factor": [0.5, 0.7]})
    >>> [p.params for p in plan.points(0)][:2]
    [{'lr': 0.0001, 'fold': 0, 'factor': 0.5}, {'lr': 0.0001, 'fold': 0, 'factor': 0.7}]
    >>> plan.point(0, 3).params
    {'lr': 0.0001, 'fold': 1, 'factor': 0.7}
    >>> chain = Plan("chain", {}, {"fold": [0, 1], "factor": [0.5, 0.7]})
    >>> chain.num_steps, chain.stepping(1)
    (2, 'factor')
    >>> [p.params for p in chain.points(1, {"fold": 1})]
    [{'factor': 0.5, 'fold': 1}, {'factor': 0.7, 'fold': 1}]
    """

    mode: str
    fixed: dict[str, Any]
    swept: dict[str, list]
    use_best_param: bool = True
    trials: int = 0  # optimize mode: how many runs a sampler fills in
    #: Each repeat's values of the repeat params (folds, seeds): every point is
    #: a configuration run once per repeat. Empty: one run per point.
    repeats: tuple[dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        check_mode(self.mode)

    @property
    def repeat_count(self) -> int:
        """How many runs a configuration makes (1 without repeats)."""
        return max(1, len(self.repeats))

    @property
    def jobs(self) -> int:
        """How many runs (jobs) the whole plan makes: configurations times repeats.

        >>> Plan("product", {}, {"lr": [1, 2]}, repeats=({"fold": 0}, {"fold": 1})).jobs
        4
        """
        return self.total * self.repeat_count

    def repeat_params(self, point: Point, repeat: int | None) -> dict[str, Any]:
        """The params of one repeat of a configuration (the point's own without repeats).

        >>> plan = Plan("product", {}, {"lr": [1, 2]}, repeats=({"fold": 0}, {"fold": 1}))
        >>> plan.repeat_params(plan.point(0, 1), 1)
        {'lr': 2, 'fold': 1}
        """
        if repeat is None or not self.repeats:
            return dict(point.params)
        return {**point.params, **self.repeats[repeat]}

    @classmethod
    def from_params(cls, mode: str, params: Mapping[str, Any], use_best_param: bool = True) -> Plan:
        """Build a plan from one mapping of param values (see :func:`split_params`).

        >>> Plan.from_params("chain", {"a": [1, 2], "b": 3}).total
        2
        """
        fixed, swept = split_params(params)
        return cls(mode, fixed, swept, use_best_param)

    @property
    def num_steps(self) -> int:
        """How many steps the plan has: one per swept param for chain, else 1."""
        if self.mode != "chain" or not self.swept:
            return 1
        return len(self.swept)

    @property
    def total(self) -> int:
        """How many runs the whole plan makes.

        >>> Plan.from_params("product", {"a": [1, 2, 3], "b": [4, 5]}).total
        6
        """
        return sum(self.size(step) for step in range(self.num_steps))

    def size(self, step: int) -> int:
        """How many runs ``step`` makes.

        >>> Plan.from_params("chain", {"a": [1, 2, 3], "b": [4, 5]}).size(1)
        2
        """
        self._check_step(step)
        if self.mode == "optimize":
            return self.trials
        if self.mode == "product":
            return math.prod(len(v) for v in self.swept.values())
        name = self.stepping(step)
        return 1 if name is None else len(self.swept[name])

    def stepping(self, step: int) -> str | None:
        """The chain param that ``step`` sweeps (None in the other modes)."""
        if self.mode != "chain" or not self.swept:
            return None
        return list(self.swept)[step]

    def _check_step(self, step: int) -> None:
        if not 0 <= step < self.num_steps:
            raise IndexError(f"step {step} is outside 0..{self.num_steps - 1}")

    def point(self, step: int, index: int, winners: Mapping[str, Any] | None = None) -> Point:
        """The ``index``-th run of ``step``, with its params in printing order."""
        size = self.size(step)
        if not 0 <= index < size:
            raise IndexError(f"run {index} is outside 0..{size - 1} of step {step}")
        if self.mode == "optimize":  # a sampler adds the swept values when it is run
            return Point(0, index, flatten(self.fixed))
        if self.mode == "product":
            combo: dict[str, Any] = {}
            rest = index
            for name, values in reversed(self.swept.items()):  # the last varies fastest
                rest, position = divmod(rest, len(values))
                combo[name] = values[position]
            swept = {name: combo[name] for name in self.swept}
            return Point(0, index, flatten({**self.fixed, **swept}))
        name = self.stepping(step)
        if name is None:
            return Point(0, 0, flatten(self.fixed))
        earlier: dict[str, Any] = {}
        if self.use_best_param:
            winners = winners or {}
            for prior in list(self.swept)[:step]:
                earlier[prior] = winners[prior] if prior in winners else self.swept[prior][0]
        params = {**self.fixed, name: self.swept[name][index], **earlier}
        return Point(step, index, flatten(params))

    def points(self, step: int, winners: Mapping[str, Any] | None = None) -> Iterator[Point]:
        """The runs of one step, in order, computed one at a time."""
        for index in range(self.size(step)):
            yield self.point(step, index, winners)


def split_repeats(
    swept: Mapping[str, list], repeat: Sequence[str]
) -> tuple[dict[str, list], tuple[dict[str, Any], ...]]:
    """Take the repeat params out of the swept ones: their combinations are the repeats.

    >>> split_repeats({"fold": [0, 1], "lr": [0.1, 0.2]}, ["fold"])
    ({'lr': [0.1, 0.2]}, ({'fold': 0}, {'fold': 1}))
    >>> split_repeats({"lr": [0.1]}, ["seed"])
    Traceback (most recent call last):
    ...
    ValueError: 'seed' is not a swept param; repeat names swept params (folds, seeds)
    """
    import itertools

    for name in repeat:
        if name not in swept:
            raise ValueError(
                f"{name!r} is not a swept param; repeat names swept params (folds, seeds)"
            )
    if len(set(repeat)) != len(repeat):
        raise ValueError(f"a param is named twice: {list(repeat)!r}")
    rest = {k: v for k, v in swept.items() if k not in repeat}
    combos = itertools.product(*(swept[name] for name in repeat))
    repeats = tuple(dict(zip(repeat, values, strict=True)) for values in combos) if repeat else ()
    return rest, repeats

"""What a sweep optimizes: one direction or several, and the metric each is read from.

Pure. Both front ends turn their input into one :class:`Objectives`, so that a
list of one (``direction: [minimize]``) means exactly what ``minimize`` means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("minimize", "maximize")
#: The metric name of a score when the sweep sets no metric.
DEFAULT_METRIC = "score"


def check_direction(direction: Any) -> str:
    """Return ``direction`` if it is ``minimize`` or ``maximize``, else raise.

    >>> check_direction("maximize")
    'maximize'
    >>> check_direction("max")
    Traceback (most recent call last):
    ...
    ValueError: unknown direction 'max': use 'minimize' or 'maximize'
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}: use 'minimize' or 'maximize'")
    return str(direction)


def _names(value: Any, what: str) -> tuple[Any, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return tuple(value)
    raise ValueError(f"{what}: give a name or a list of names, not {value!r}")


@dataclass(frozen=True)
class Objectives:
    """The directions of a sweep's objectives and the metric names they are read from.

    ``metrics`` is empty when no metric is set (a job's returned number is its
    score), else one name per direction.

    >>> Objectives.of(["minimize"], ["loss"]) == Objectives.of("minimize", "loss")
    True
    >>> Objectives.of(["minimize", "maximize"]).metric_names
    ['score_0', 'score_1']
    >>> Objectives.of("maximize").better(0.9, 0.5)
    True
    >>> Objectives.of(["minimize", "minimize"], ["a"])
    Traceback (most recent call last):
    ...
    ValueError: metric: 1 name for 2 directions; give one name per direction
    """

    directions: tuple[str, ...] = ("minimize",)
    metrics: tuple[str, ...] = ()

    @classmethod
    def of(cls, direction: Any = "minimize", metric: Any = None) -> Objectives:
        """Validate a direction (or a list) and a metric name (or a list, or None)."""
        directions = _names(direction, "direction")
        if not directions:
            raise ValueError("direction: give minimize or maximize, or a list of them")
        for item in directions:
            check_direction(item)
        metrics = () if metric is None else _names(metric, "metric")
        if any(not isinstance(m, str) or not m for m in metrics):
            raise ValueError(f"metric: names are non-empty strings, not {metric!r}")
        if metrics and len(metrics) != len(directions):
            noun = "name" if len(metrics) == 1 else "names"
            raise ValueError(
                f"metric: {len(metrics)} {noun} for {len(directions)} directions; "
                "give one name per direction"
            )
        return cls(tuple(directions), tuple(metrics))

    @property
    def count(self) -> int:
        """How many objectives a run scores."""
        return len(self.directions)

    @property
    def single(self) -> bool:
        """One objective."""
        return self.count == 1

    @property
    def direction(self) -> str:
        """The direction of the only objective (several: the first)."""
        return self.directions[0]

    @property
    def metric(self) -> str | None:
        """The metric of the only objective, or None when none is set."""
        return self.metrics[0] if self.metrics and self.single else None

    @property
    def metric_arg(self) -> Any:
        """The metric as the outcome rules take it: a name, a list of names, or None."""
        if not self.metrics:
            return None
        return self.metrics[0] if self.single else list(self.metrics)

    @property
    def metric_names(self) -> list[str]:
        """The MLflow metric name each objective's score is logged under.

        >>> Objectives.of().metric_names, Objectives.of("minimize", "loss").metric_names
        (['score'], ['loss'])
        """
        if self.metrics:
            return list(self.metrics)
        if self.single:
            return [DEFAULT_METRIC]
        return [f"{DEFAULT_METRIC}_{i}" for i in range(self.count)]

    @property
    def stored(self) -> dict[str, Any]:
        """Plain data for results and the sweep's definition."""
        return {
            "direction": self.direction if self.single else list(self.directions),
            "metric": self.metric_arg,
        }

    def better(self, new: float, old: float) -> bool:
        """Whether score ``new`` beats ``old`` (one objective)."""
        return new < old if self.direction == "minimize" else new > old

    def best_index(self, scores: Sequence[float | None]) -> int | None:
        """Index of the best finite score; ties go to the earliest; None if none scored.

        >>> Objectives.of().best_index([0.3, 0.1, 0.1])
        1
        >>> Objectives.of("maximize").best_index([0.3, None, float("nan"), 0.3])
        0
        >>> Objectives.of().best_index([None, float("nan")]) is None
        True
        """
        best: int | None = None
        for i, score in enumerate(scores):
            if score is None or not math.isfinite(score):
                continue
            current = None if best is None else scores[best]
            if current is None or self.better(score, current):
                best = i
        return best

    def pareto_front(self, values: Sequence[Sequence[float]]) -> list[int]:
        """Indices of the runs no other run beats on every objective (in order).

        >>> Objectives.of(["minimize", "minimize"]).pareto_front([[1, 5], [2, 2], [3, 3], [5, 1]])
        [0, 1, 3]
        >>> Objectives.of(["maximize", "minimize"]).pareto_front([[1, 5], [2, 2]])
        [1]
        """
        signs = [1 if d == "minimize" else -1 for d in self.directions]
        keyed = [[s * v for s, v in zip(signs, row, strict=True)] for row in values]

        def dominates(a: list[float], b: list[float]) -> bool:
            return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

        return [i for i, row in enumerate(keyed) if not any(dominates(o, row) for o in keyed)]

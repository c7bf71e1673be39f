"""What a run scored, from what it returned, reported or logged."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """How a run ended.

    ``state`` is ``complete`` (scored), ``fail`` (error, NaN or a score that
    was asked for and is missing) or ``pruned`` (finished with no score asked
    for; Optuna needs a value to call a trial complete).
    """

    state: str
    score: float | None = None
    reason: str | None = None

    @property
    def failed(self) -> bool:
        """True for a failed run."""
        return self.state == "fail"


class MissingMetricError(KeyError):
    """A returned mapping lacks the configured metric."""


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (or a 0-d tensor/array), else None.

    >>> as_number(3), as_number(0.5), as_number(True), as_number("1.0")
    (3.0, 0.5, None, None)
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item):
        try:
            inner = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return as_number(inner)
    return None


def score_outcome(score: float) -> Outcome:
    """A finite score completes the run; NaN and infinities fail it.

    >>> score_outcome(0.25)
    Outcome(state='complete', score=0.25, reason=None)
    >>> score_outcome(float("nan")).state
    'fail'
    """
    if not math.isfinite(score):
        return Outcome("fail", None, f"score is {score}")
    return Outcome("complete", score)


def outcome_from_value(value: Any, metric: str | None, logged: float | None = None) -> Outcome:
    """Score a run from its returned (or reported) value.

    A number is the score; a mapping gives ``mapping[metric]``; otherwise the
    value ``logged`` to MLflow under ``metric`` is used. With no metric set and
    nothing numeric returned, the run finished without a score.

    >>> outcome_from_value(0.5, None)
    Outcome(state='complete', score=0.5, reason=None)
    >>> outcome_from_value({"loss": 0.2, "acc": 0.9}, "acc").score
    0.9
    >>> outcome_from_value(None, "loss", logged=0.3).score
    0.3
    >>> outcome_from_value(None, None).state
    'pruned'
    >>> outcome_from_value(None, "loss").reason
    "no score: metric 'loss' was neither returned nor logged"
    """
    number = as_number(value)
    if number is not None:
        return score_outcome(number)
    if isinstance(value, Mapping) and metric is not None:
        if metric not in value:
            raise MissingMetricError(
                f"metric {metric!r} is missing from the returned mapping "
                f"(keys: {', '.join(map(str, value)) or 'none'})"
            )
        number = as_number(value[metric])
        if number is None:
            return Outcome("fail", None, f"metric {metric!r} is not a number: {value[metric]!r}")
        return score_outcome(number)
    if metric is None:
        return Outcome("pruned")
    if logged is not None:
        return score_outcome(logged)
    return Outcome("fail", None, f"no score: metric {metric!r} was neither returned nor logged")

"""How a run ended, from what it returned, reported, logged or raised.

Pure: the one place where a run's result becomes a state and a score, for the
sweeper's jobs and the task API's runs alike.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMPLETE = "complete"
FAIL = "fail"
PRUNED = "pruned"
#: The error of a run whose process stopped before the run could end (a dead
#: worker, a stopped sweep): its job runs again.
INTERRUPTED = "Interrupted"
#: The error of a run that the pruner stopped (Optuna's exception's name).
TRIAL_PRUNED = "TrialPruned"
#: The error of a task API run whose loop stopped (``break``, an exception).
STOPPED = "Stopped"
#: The error of a job that a budget (``timeout``, ``max_failures``) kept from
#: starting, or of a configuration it stopped between repeats: not a failure,
#: it runs on resume.
BUDGET_SPENT = "BudgetSpent"
#: Errors of runs cut short from outside, rather than by their own code.
KILLED_ERRORS = ("KeyboardInterrupt", INTERRUPTED, TRIAL_PRUNED, BUDGET_SPENT)


@dataclass(frozen=True)
class Outcome:
    """How a run ended.

    ``state`` is ``complete`` (scored), ``fail`` (an error, NaN, or a score that
    was asked for and is missing) or ``pruned`` (finished without a score when
    none was asked for, or stopped by a pruner; Optuna needs a value to call a
    trial complete). ``error`` names the exception type of a failure.
    """

    state: str
    score: float | None = None
    reason: str | None = None
    error: str | None = None
    values: tuple[float, ...] | None = None  # one per objective, with several objectives

    @property
    def failed(self) -> bool:
        """True for a failed run."""
        return self.state == FAIL

    @property
    def interrupted(self) -> bool:
        """The run was cut short from outside (see :data:`INTERRUPTED`), or left by a
        budget (:data:`BUDGET_SPENT`); it runs again."""
        return self.error in (INTERRUPTED, BUDGET_SPENT)

    @property
    def left(self) -> bool:
        """A budget kept the run from starting (or from ending its repeats): not a failure."""
        return self.error == BUDGET_SPENT

    @property
    def killed(self) -> bool:
        """The run was cut short from outside (a stop, a dead process, the pruner)."""
        return self.error in KILLED_ERRORS

    @property
    def missing_metric(self) -> bool:
        """The run returned a mapping without the sweep's metric."""
        return self.error == MissingMetricError.__name__

    @property
    def objectives(self) -> list[float] | None:
        """The values Optuna stores: one per objective, or None.

        >>> Outcome("complete", 0.5).objectives, Outcome("complete", values=(1.0, 2.0)).objectives
        ([0.5], [1.0, 2.0])
        """
        if self.values is not None:
            return list(self.values)
        return None if self.score is None else [self.score]


class MissingMetricError(KeyError):
    """A returned mapping lacks the configured metric."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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
    if callable(item) and getattr(value, "ndim", 0) == 0:
        try:
            inner = item()
        except (TypeError, ValueError, RuntimeError):
            return None
        return as_number(inner)
    return None


def check_reported(value: Any) -> Any:
    """Return ``value`` if a run may report it, else raise :class:`TypeError`.

    A run reports a number, a sequence of numbers (one per objective) or a
    mapping whose values are numbers.

    >>> check_reported(0.5), check_reported({"loss": 1}), check_reported([1.0, 2.0])
    (0.5, {'loss': 1}, [1.0, 2.0])
    >>> check_reported("abc")
    Traceback (most recent call last):
    ...
    TypeError: report() takes a number, a sequence of numbers or a mapping of numbers, not 'abc'
    >>> check_reported({"loss": "high"})
    Traceback (most recent call last):
    ...
    TypeError: report() takes numbers; 'loss' is 'high'
    """
    if as_number(value) is not None:
        return value
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            if as_number(item) is None:
                raise TypeError(f"report() takes numbers; {key!r} is {item!r}")
        return value
    if (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and value
        and all(as_number(v) is not None for v in value)
    ):
        return value
    raise TypeError(
        f"report() takes a number, a sequence of numbers or a mapping of numbers, not {value!r}"[
            :300
        ]
    )


def score_outcome(score: float) -> Outcome:
    """A finite score completes the run; NaN and infinities fail it.

    >>> score_outcome(0.25)
    Outcome(state='complete', score=0.25, reason=None, error=None, values=None)
    >>> score_outcome(float("nan")).reason
    'score is nan'
    """
    if not math.isfinite(score):
        return Outcome(FAIL, None, f"score is {score}")
    return Outcome(COMPLETE, score)


def outcome_from_value(value: Any, metric: str | None, logged: float | None = None) -> Outcome:
    """Score a run from its returned (or reported) value.

    A number is the score; a one-element sequence of numbers too; a mapping
    gives ``mapping[metric]``; otherwise the value ``logged`` to MLflow under
    ``metric`` is used. With no metric set and nothing numeric returned, the
    run finished without a score. A metric missing from a returned mapping
    raises :class:`MissingMetricError`.

    >>> outcome_from_value(0.5, None).score
    0.5
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
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 1:
        number = as_number(value[0])
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
            return Outcome(FAIL, None, f"metric {metric!r} is not a number: {value[metric]!r}")
        return score_outcome(number)
    if metric is None:
        return Outcome(PRUNED)
    if logged is not None:
        return score_outcome(logged)
    return Outcome(FAIL, None, f"no score: metric {metric!r} was neither returned nor logged")


def plain_score_note(metric: Any, value: Any, run_name: str = "the first job") -> str | None:
    """What to say once when a run returned a plain number although a metric is named.

    The number is the score, recorded under the metric's name (as the job's MLflow
    metric too), though the job named it nowhere; None when there is nothing to say.

    >>> plain_score_note("val_loss", 0.1, "run#0")
    "run#0 returned a plain number, not a mapping: each job's returned number is taken as val_loss"
    >>> plain_score_note("val_loss", {"val_loss": 0.1}), plain_score_note(None, 0.1)
    (None, None)
    >>> plain_score_note(["a", "b"], 0.1), plain_score_note("val_loss", None)
    (None, None)
    """
    if not isinstance(metric, str) or isinstance(value, Mapping):
        return None
    one = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == 1
    if as_number(value[0] if one else value) is None:
        return None
    return (
        f"{run_name} returned a plain number, not a mapping: "
        f"each job's returned number is taken as {metric}"
    )


def outcome_from_values(value: Any, metrics: Sequence[str] | None, count: int) -> Outcome:
    """Score a run of several objectives: a sequence of ``count`` numbers, or a mapping.

    >>> outcome_from_values([1.0, 2.0], None, 2).values
    (1.0, 2.0)
    >>> outcome_from_values({"loss": 1, "time": 3, "x": 0}, ["time", "loss"], 2).values
    (3.0, 1.0)
    >>> outcome_from_values(0.5, None, 2).reason
    'expected 2 values, one per objective, not 0.5'
    """
    if isinstance(value, Mapping) and metrics:
        missing = [m for m in metrics if m not in value]
        if missing:
            raise MissingMetricError(
                f"metric {missing[0]!r} is missing from the returned mapping "
                f"(keys: {', '.join(map(str, value)) or 'none'})"
            )
        value = [value[m] for m in metrics]
    if value is None and not metrics:
        return Outcome(PRUNED)
    numbers = None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) == count:
        numbers = [as_number(v) for v in value]
    if numbers is None or any(n is None for n in numbers):
        return Outcome(
            FAIL, None, f"expected {count} values, one per objective, not {value!r}"[:300]
        )
    bad = [n for n in numbers if not math.isfinite(n)]  # type: ignore[arg-type]
    if bad:
        return Outcome(FAIL, None, f"score is {bad[0]}")
    return Outcome(COMPLETE, values=tuple(numbers))  # type: ignore[arg-type]


def outcome_from_error(error: BaseException) -> Outcome:
    """A run that raised failed, with the exception's type and message.

    A pruner's ``TrialPruned`` is not a failure: the run was stopped early.

    >>> outcome_from_error(ValueError("bad lr"))
    Outcome(state='fail', score=None, reason='ValueError: bad lr', error='ValueError', values=None)
    >>> outcome_from_error(SystemExit(3)).reason
    'the job called sys.exit(3)'
    """
    name = type(error).__name__
    if name == TRIAL_PRUNED:
        return Outcome(PRUNED, None, f"pruned: {error}" if str(error) else "pruned", name)
    if isinstance(error, SystemExit):
        return Outcome(FAIL, None, f"the job called sys.exit({error.code!r})", name)
    if isinstance(error, MissingMetricError):
        return Outcome(FAIL, None, str(error), name)
    message = str(error)
    return Outcome(FAIL, None, f"{name}: {message}" if message else name, name)


def score_or_fail(
    value: Any, metric: Any, logged: float | None = None, objectives: int = 1
) -> Outcome:
    """How a run that returned ``value`` ended; a missing metric fails it.

    With several ``objectives``, ``metric`` is None or a list of names.

    >>> score_or_fail({"loss": 1.0}, "acc").error
    'MissingMetricError'
    >>> score_or_fail((1, 2), ["a", "b"], objectives=2).values
    (1.0, 2.0)
    """
    try:
        if objectives > 1:
            return outcome_from_values(value, metric, objectives)
        return outcome_from_value(value, metric, logged)
    except MissingMetricError as error:
        return outcome_from_error(error)

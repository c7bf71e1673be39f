"""Optuna distributions for sweep values, so that optuna-dashboard can plot them."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

    from ivory_hydra.core.space import Interval


def optuna_value(value: Any) -> Any:
    """A param value as Optuna can store it (None, bool, int, float or str).

    >>> optuna_value(3), optuna_value("vit"), optuna_value([1, 2])
    (3, 'vit', '[1, 2]')
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def distribution_for(values: Sequence[Any], log: bool = False) -> BaseDistribution:
    """The distribution that lets optuna-dashboard plot a param's values.

    Ints give an IntDistribution, numbers a FloatDistribution (log scale when the
    range was), and anything else a CategoricalDistribution.

    >>> distribution_for([1, 3, 5])
    IntDistribution(high=5, log=False, low=1, step=1)
    >>> distribution_for([0.001, 0.1], log=True)
    FloatDistribution(high=0.1, log=True, low=0.001, step=None)
    >>> distribution_for(["resnet", "vit", "resnet"])
    CategoricalDistribution(choices=('resnet', 'vit'))
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if values and all(_is_number(v) for v in values):
        low, high = min(values), max(values)
        if all(isinstance(v, int) for v in values):
            return IntDistribution(int(low), int(high), log=log and low > 0)
        return FloatDistribution(float(low), float(high), log=log and low > 0)
    choices = list(dict.fromkeys(optuna_value(v) for v in values))
    return CategoricalDistribution(choices)


def distributions_for(
    values: Mapping[str, Sequence[Any]], log: Collection[str] = ()
) -> dict[str, BaseDistribution]:
    """One distribution per param, from all the values the sweep can give it.

    >>> distributions_for({"fold": [0, 1, 2], "lr": [0.001, 0.1]}, log={"lr"})["lr"].log
    True
    """
    return {name: distribution_for(list(vs), log=name in log) for name, vs in values.items()}


def trial_param(value: Any, distribution: BaseDistribution) -> Any:
    """Convert a value to the type its distribution stores.

    >>> from optuna.distributions import FloatDistribution
    >>> trial_param(1, FloatDistribution(0.5, 2.0))
    1.0
    """
    from optuna.distributions import FloatDistribution

    if isinstance(distribution, FloatDistribution):
        return float(value)
    return optuna_value(value)


def fits(values: Sequence[Any], default: Any, log: bool = False) -> bool:
    """Whether a param's config default can join its swept values in one distribution.

    A number joins numbers (widening their range; a log scale needs it
    positive); a plain value joins non-numeric choices. Anything else (None
    beside numbers, a list, a number beside strings) would turn a plot the
    dashboard can draw into one it cannot, so it stays out.

    >>> fits([0.1, 0.2], 0.5), fits([1e-3, 1e-2], 0.0, log=True), fits([1, 2], None)
    (True, False, False)
    >>> fits(["resnet", "vit"], "mlp"), fits(["resnet", "vit"], [1, 2])
    (True, False)
    """
    if values and all(_is_number(v) for v in values):
        return _is_number(default) and not (log and default <= 0)
    return default is None or isinstance(default, (bool, str)) or _is_number(default)


def interval_distribution(interval: Interval) -> BaseDistribution:
    """The Optuna distribution of an optimize-mode interval.

    >>> from ivory_hydra.core.space import Interval
    >>> interval_distribution(Interval(1e-5, 0.1, log=True))
    FloatDistribution(high=0.1, log=True, low=1e-05, step=None)
    >>> interval_distribution(Interval(0, 10, 2, is_int=True))
    IntDistribution(high=10, log=False, low=0, step=2)
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    if interval.is_int:
        step = int(interval.step or 1)
        return IntDistribution(int(interval.low), int(interval.high), log=interval.log, step=step)
    return FloatDistribution(
        float(interval.low), float(interval.high), log=interval.log, step=interval.step
    )

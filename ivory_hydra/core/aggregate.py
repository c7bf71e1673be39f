"""A configuration's score from its repeats' scores (folds, seeds).

Pure. The aggregate is the configuration's score; the standard deviation and
the count are kept beside it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

AGGREGATES = ("mean", "median", "min", "max")


def check_aggregate(name: str) -> str:
    """Return ``name`` if it is a known aggregate, else raise.

    >>> check_aggregate("median")
    'median'
    >>> check_aggregate("avg")
    Traceback (most recent call last):
    ...
    ValueError: unknown aggregate 'avg': use 'mean', 'median', 'min' or 'max'
    """
    if name not in AGGREGATES:
        raise ValueError(f"unknown aggregate {name!r}: use 'mean', 'median', 'min' or 'max'")
    return name


@dataclass(frozen=True)
class Aggregated:
    """A configuration's score: the aggregate of its repeats, their spread and count."""

    score: float
    std: float
    n: int


def aggregate(name: str, scores: Sequence[float]) -> Aggregated:
    """Aggregate finite repeat scores; the standard deviation is the sample's (0 for one).

    >>> aggregate("mean", [1.0, 2.0, 3.0])
    Aggregated(score=2.0, std=1.0, n=3)
    >>> aggregate("max", [0.5])
    Aggregated(score=0.5, std=0.0, n=1)
    """
    check_aggregate(name)
    if not scores or not all(math.isfinite(s) for s in scores):
        raise ValueError(f"cannot aggregate {list(scores)!r}: finite scores only")
    function = {"mean": statistics.fmean, "median": statistics.median, "min": min, "max": max}
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return Aggregated(float(function[name](scores)), float(std), len(scores))

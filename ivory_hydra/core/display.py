"""How runs and results are printed: ``[run#N] k=v k=v``, numbers as Ivory printed them."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any


def format_value(value: Any) -> str:
    """Format one param value the way Ivory printed it (``.4g`` for numbers).

    >>> format_value(1e-4), format_value(0.5), format_value(32), format_value("vit")
    ('0.0001', '0.5', '32', 'vit')
    >>> format_value(True), format_value(123456789)
    ('True', '123456789')
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return format(value, ".4g")


def run_line(run_name: str, params: Mapping[str, Any]) -> str:
    """The line printed for one run.

    >>> run_line("run#4", {"lr": 1e-4, "fold": 0, "factor": 0.5})
    '[run#4] lr=0.0001 fold=0 factor=0.5'
    >>> run_line("run#0", {})
    '[run#0]'
    """
    parts = [f"[{run_name}]"]
    parts += [f"{key}={format_value(value)}" for key, value in params.items()]
    return " ".join(parts)


def summary_table(rows: Mapping[str, Any]) -> str:
    """A two-column table of names and values.

    >>> print(summary_table({"best run": "run#3", "lr": 0.001, "loss": 0.25}))
    best run  run#3
    lr        0.001
    loss      0.25
    """
    if not rows:
        return ""
    width = max(len(str(key)) for key in rows)
    return "\n".join(f"{key!s:<{width}}  {format_value(value)}" for key, value in rows.items())

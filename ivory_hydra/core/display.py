"""How runs and results are printed: ``[run#N] k=v k=v``, numbers as Ivory printed them."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
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


def table(rows: Sequence[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Rows of cells as aligned lines (numbers formatted as Ivory printed them).

    >>> for line in table([["lr", 0.001, "run#3"], ["dropout", 0.0, "run#7"]]):
    ...     print(line)
      lr       0.001  run#3
      dropout  0      run#7
    """
    cells = [[format_value(c) for c in row] for row in rows]
    widths = [
        max(len(row[i]) for row in cells if i < len(row))
        for i in range(max(map(len, cells), default=0))
    ]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
        for row in cells
    ]


def plural(count: int, noun: str) -> str:
    """``1 job``, ``2 jobs``.

    >>> plural(1, "job"), plural(1000000, "job")
    ('1 job', '1,000,000 jobs')
    """
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())


def summary_lines(summary: Mapping[str, Any], metric: Any, noun: str = "job") -> list[str]:
    """The story of a finished sweep or task, from its summary (``results.yaml``'s data).

    >>> lines = summary_lines({
    ...     "task": "task#2", "total": 3, "runs": {"complete": 2, "fail": 1},
    ...     "best": {"run": "run#4", "score": 0.25, "params": {"lr": 0.1, "model": "vit"}},
    ...     "decisions": {"lr": {"value": 0.1, "score": 0.3, "run": "run#1"}},
    ...     "failed": [{"run": "run#5", "reason": "ValueError: x", "traceback": "/o/2/error.txt"}],
    ... }, "loss")
    >>> for line in lines:
    ...     print(line)
    task#2: 3 jobs, 2 complete, 1 failed
    Chain decisions (param, value, loss, run):
      lr  0.1  0.3  run#1
    Best run: run#4, loss 0.25
      lr     0.1
      model  vit
    Failed:
      run#5  ValueError: x  (traceback: /o/2/error.txt)
    """
    runs = summary.get("runs") or {}
    counts = [f"{n} {'failed' if state == 'fail' else state}" for state, n in runs.items() if n]
    name = metric if isinstance(metric, str) else "score"
    lines = [f"{summary.get('task', '')}: {plural(int(summary.get('total', 0)), noun)}"]
    if counts:
        lines[0] += ", " + ", ".join(counts)
    decisions = summary.get("decisions") or {}
    if decisions:
        lines.append(f"Chain decisions (param, value, {name}, run):")
        rows = [
            [k, d.get("value"), d.get("score", "-"), d.get("run") or "-"]
            for k, d in decisions.items()
        ]
        lines += table([[c if c is not None else "-" for c in row] for row in rows])
    best = summary.get("best")
    pareto = summary.get("pareto") or []
    if best:
        lines.append(f"Best run: {best['run']}, {name} {format_value(best['score'])}")
        lines += table([[k, v] for k, v in (best.get("params") or {}).items()])
    elif pareto:
        names = ", ".join(metric) if isinstance(metric, list) else "scores"
        lines.append(f"Pareto front ({len(pareto)} runs: run, {names}, params):")
        lines += table(
            [
                [p["run"], " ".join(format_value(v) for v in p["values"]), _params(p["params"])]
                for p in pareto
            ]
        )
    else:
        lines.append(f"No {noun} reported a score.")
    failed = summary.get("failed") or []
    if failed:
        lines.append("Failed:")
        rows = []
        for f in failed:
            where = f"(traceback: {f['traceback']})" if f.get("traceback") else ""
            rows.append([f["run"], f.get("reason") or "", where])
        lines += table(rows)
    return lines

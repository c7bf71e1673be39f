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


def plan_size(configurations: int, repeats: int) -> str:
    """How many jobs a plan runs, with its configurations and repeats if it has any.

    >>> plan_size(6, 1), plan_size(4, 5)
    ('6 jobs', '4 configurations × 5 repeats (20 jobs)')
    """
    if repeats <= 1:
        return plural(configurations, "job")
    jobs = plural(configurations * repeats, "job")
    return f"{plural(configurations, 'configuration')} × {plural(repeats, 'repeat')} ({jobs})"


def _spread(config: Mapping[str, Any]) -> str:
    """A configuration's score as ``aggregate ± std (n)``, or ``-`` when it has none.

    >>> _spread({"score": 0.25, "std": 0.01, "n": 5}), _spread({"score": None})
    ('0.25 ± 0.01 (5)', '-')
    """
    if config.get("score") is None:
        return "-"
    std = config.get("std")
    spread = "" if std is None else f" ± {format_value(std)}"
    return f"{format_value(config['score'])}{spread} ({config.get('n', 0)})"


#: At most this many configurations are listed in the log (results.yaml has all).
SHOWN_CONFIGURATIONS = 20


def _ranked(configurations: Sequence[Mapping[str, Any]], direction: str) -> list[Mapping[str, Any]]:
    """Scored configurations first (the best first), the rest after; at most 20."""
    scored = sorted(
        (c for c in configurations if c.get("score") is not None),
        key=_score,
        reverse=direction == "maximize",
    )
    rest = [c for c in configurations if c.get("score") is None]
    return (scored + rest)[:SHOWN_CONFIGURATIONS]


def _or_dash(value: Any) -> Any:
    return "-" if value is None else value


def _score(config: Mapping[str, Any]) -> float:
    return float(config["score"])


def _params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())


def _decided(value: Any) -> Any:
    """A chain decision's value; a zipped row's as its members (``model=vit lr=0.1``)."""
    return _params(value) if isinstance(value, Mapping) else value


def summary_lines(
    summary: Mapping[str, Any], metric: Any, noun: str = "job", direction: str = "minimize"
) -> list[str]:
    """The story of a finished sweep or task, from its summary (``results.yaml``'s data).

    >>> lines = summary_lines({
    ...     "task": "task#2", "total": 3, "runs": {"complete": 2, "fail": 1},
    ...     "best": {"run": "run#4", "score": 0.25, "params": {"lr": 0.1, "model": "vit"}},
    ...     "decisions": {"lr": {"value": 0.1, "score": 0.3, "run": "run#1"},
    ...                   "arch": {"value": {"m": "vit", "bs": 8}, "score": 0.3, "run": "run#3"},
    ...                   "depth": {"value": None, "score": None, "run": None}},
    ...     "failed": [{"run": "run#5", "reason": "ValueError: x", "traceback": "/o/2/error.txt"}],
    ... }, "loss")
    >>> for line in lines:
    ...     print(line)
    task#2: 3 jobs, 2 complete, 1 failed
    Chain decisions (param, value, loss, run):
      lr     0.1         0.3  run#1
      arch   m=vit bs=8  0.3  run#3
      depth  None        -    -
    Best run: run#4, loss 0.25
      lr     0.1
      model  vit
    Failed:
      run#5  ValueError: x  (traceback: /o/2/error.txt)

    With repeats, each configuration shows its aggregate ± standard deviation (n):

    >>> for line in summary_lines({
    ...     "task": "task#0", "total": 2, "repeats": 3, "runs": {"complete": 2},
    ...     "best": {"run": "config#1", "score": 0.2, "std": 0.05, "n": 3, "params": {"lr": 0.1}},
    ...     "configurations": [
    ...         {"run": "config#0", "score": 0.4, "std": 0.1, "n": 3, "params": {"lr": 1.0}},
    ...         {"run": "config#1", "score": 0.2, "std": 0.05, "n": 3, "params": {"lr": 0.1}}],
    ... }, None):
    ...     print(line)
    task#0: 2 configurations × 3 repeats (6 jobs), 2 complete
    Configurations (score ± std (n), params), best first:
      config#1  0.2 ± 0.05 (3)  lr=0.1
      config#0  0.4 ± 0.1 (3)   lr=1
    Best configuration: config#1, score 0.2 ± 0.05 (3)
      lr  0.1

    A budget that stopped the sweep says so, with the jobs it left:

    >>> summary_lines({
    ...     "task": "task#0", "total": 5, "runs": {"complete": 2},
    ...     "stopped_by": {"setting": "timeout", "reason": "timeout=60 s passed", "left": 3},
    ... }, None)[1]
    'Stopped: timeout=60 s passed; 3 jobs left (the same command resumes them)'
    """
    runs = summary.get("runs") or {}
    counts = [f"{n} {'failed' if state == 'fail' else state}" for state, n in runs.items() if n]
    name = metric if isinstance(metric, str) else "score"
    repeats = int(summary.get("repeats") or 0)
    total = int(summary.get("total", 0))
    size = plan_size(total, repeats) if repeats else plural(total, noun)
    lines = [f"{summary.get('task', '')}: {size}"]
    if counts:
        lines[0] += ", " + ", ".join(counts)
    stop = summary.get("stopped_by")
    if stop:
        left = plural(int(stop.get("left") or 0), "configuration" if repeats else noun)
        lines.append(f"Stopped: {stop['reason']}; {left} left (the same command resumes them)")
    decisions = summary.get("decisions") or {}
    if decisions:
        lines.append(f"Chain decisions (param, value, {name}, run):")
        rows = [  # a value of None is one (null): only a missing score or run is "-"
            [k, _decided(d.get("value")), _or_dash(d.get("score")), d.get("run") or "-"]
            for k, d in decisions.items()
        ]
        lines += table(rows)
    configurations = summary.get("configurations") or []
    if repeats and configurations:
        lines.append(f"Configurations ({name} ± std (n), params), best first:")
        ranked = _ranked(configurations, direction)
        lines += table([[c["run"], _spread(c), _params(c.get("params") or {})] for c in ranked])
    best = summary.get("best")
    pareto = summary.get("pareto") or []
    if best and repeats:
        lines.append(f"Best configuration: {best['run']}, {name} {_spread(best)}")
        lines += table([[k, v] for k, v in (best.get("params") or {}).items()])
    elif best:
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

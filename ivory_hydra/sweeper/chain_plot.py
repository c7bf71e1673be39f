"""A picture of a finished chain sweep: one panel per param step, score against value.

matplotlib is optional (``pip install 'ivory-hydra[plot]'``) and imported only when a
plot is drawn, so importing this module (Hydra imports plugins at start-up) stays cheap.
The figure is drawn with ``matplotlib.figure.Figure`` and the Agg canvas, never pyplot,
so the caller's backend and global state are left alone.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import secrets
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ivory_hydra.core.display import format_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

PANEL_WIDTH = 4.0  # inches per panel
PANEL_HEIGHT = 3.2  # inches per row of panels
MAX_COLUMNS = 4
DPI = 100
LEGEND_FONTSIZE = 8  # points
LEGEND_GAP = 0.5  # between a legend and the panel's frame, in font sizes (matplotlib's unit)
INSTALL_HINT = "pip install 'ivory-hydra[plot]'"

_warned = False

#: A chain step: (param, its values, their scores, the winner's index), and with
#: repeats a fifth entry: the scores' standard deviations (an error bar each).
Step = tuple[Any, ...]
SPREAD_LABEL = "± std of repeats"


def is_number(value: Any) -> bool:
    """Whether a value goes on a numeric axis (bools and strings do not).

    >>> is_number(3), is_number(1e-3), is_number(True), is_number("resnet"), is_number(None)
    (True, True, False, False, False)
    >>> is_number(float("nan"))
    False
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value))


def is_numeric(values: Sequence[Any], log_scale: bool = False) -> bool:
    """Whether a step's values go on a numeric axis: all numbers (all > 0 on a log axis).

    >>> is_numeric([1, 2.5, 10]), is_numeric([1, "a"]), is_numeric([])
    (True, False, False)
    >>> is_numeric([0.0, 1.0], log_scale=True), is_numeric([1e-3, 1.0], log_scale=True)
    (False, True)
    """
    if not values or not all(is_number(v) for v in values):
        return False
    return not log_scale or all(float(v) > 0 for v in values)


def positions(values: Sequence[Any], numeric: bool) -> list[float]:
    """Where each value goes on the x axis: the value itself, or its place in the order swept.

    Categories keep the order they were swept in, repeated values included.

    >>> positions([1e-3, 1e-1, 10], numeric=True)
    [0.001, 0.1, 10.0]
    >>> positions(["vit", "resnet", "mlp"], numeric=False)
    [0.0, 1.0, 2.0]
    """
    if numeric:
        return [float(v) for v in values]
    return [float(i) for i in range(len(values))]


def scored(scores: Sequence[float | None]) -> list[int]:
    """Indices of the usable scores (None, NaN and infinity are skipped).

    >>> scored([0.5, None, float("nan"), 0.25, float("inf")])
    [0, 3]
    """
    return [i for i, s in enumerate(scores) if s is not None and math.isfinite(float(s))]


class StepPoints(NamedTuple):
    """A step's scored points as matplotlib gets them (``errors``: None without repeats)."""

    xs: list[float]
    ys: list[float]
    errors: list[float] | None


def step_points(
    values: Sequence[Any],
    scores: Sequence[float | None],
    spreads: Sequence[float | None] | None = None,
    *,
    numeric: bool,
) -> StepPoints:
    """The scored points of one step: x, the score (with repeats, the aggregate) and
    its error bar (the standard deviation of the repeats); in x order on a numeric axis.

    >>> step_points([0.1, 0.01, 0.001], [0.82, 0.28, None], [0.4, 0.04, None], numeric=True)
    StepPoints(xs=[0.01, 0.1], ys=[0.28, 0.82], errors=[0.04, 0.4])
    >>> step_points(["vit", "resnet"], [1.2, 1.0], numeric=False)
    StepPoints(xs=[0.0, 1.0], ys=[1.2, 1.0], errors=None)
    """
    xs = positions(values, numeric)
    good = scored(scores)
    if numeric:  # an ordered axis: the line goes left to right
        good.sort(key=lambda i: xs[i])
    errors = None
    if spreads is not None and any(spreads[i] is not None for i in good):
        errors = [float(spreads[i] or 0.0) for i in good]
    return StepPoints([xs[i] for i in good], [float(scores[i]) for i in good], errors)  # type: ignore[arg-type]


def grid(panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """(rows, columns) for this many panels, at most ``max_columns`` in a row.

    >>> grid(1), grid(3), grid(4), grid(5), grid(9), grid(0)
    ((1, 1), (1, 3), (1, 4), (2, 4), (3, 4), (1, 1))
    """
    panels = max(panels, 1)
    columns = min(panels, max_columns)
    return -(-panels // columns), columns


def winner_label(values: Sequence[Any], winner: int | None) -> str | None:
    """The short label of a step's winner, or None when there is none (or it is out of range).

    >>> winner_label([1e-3, 0.1], 1), winner_label(["a"], None), winner_label(["a"], 3)
    ('winner: 0.1', None, None)
    """
    if winner is None or not 0 <= winner < len(values):
        return None
    return f"winner: {format_value(values[winner])}"


def title(metric: str, direction: str) -> str:
    """The figure's title.

    >>> title("loss", "minimize")
    'chain sweep (minimize loss)'
    """
    return f"chain sweep ({direction} {metric})"


def _warn_once(error: ImportError) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "No chain plot: matplotlib cannot be imported (%s); to get it: %s", error, INSTALL_HINT
        )


def _draw_step(ax: Any, step: Step, *, metric: str, log_scale: bool) -> None:
    """Draw one chain step on ``ax`` (a matplotlib Axes)."""
    name, values, scores, winner = step[:4]
    values = list(values)
    scores = (list(scores) + [None] * len(values))[: len(values)]
    spreads = (list(step[4]) + [None] * len(values))[: len(values)] if len(step) > 4 else None
    numeric = is_numeric(values, log_scale)
    xs = positions(values, numeric)
    good = scored(scores)
    ax.set_title(str(name), fontweight="bold")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    if numeric and log_scale:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(xs)
        ax.set_xticklabels([format_value(v) for v in values], rotation=30 if len(xs) > 4 else 0)
        if xs:
            ax.set_xlim(xs[0] - 0.5, xs[-1] + 0.5)
    elif xs:
        ticks = sorted(set(xs))
        if len(ticks) <= 8:
            ax.set_xticks(ticks)
            ax.set_xticklabels([format_value(t) for t in ticks])
            ax.minorticks_off()

    points = step_points(values, scores, spreads, numeric=numeric)
    if points.xs:
        # an ordered axis: the line shows the trend; categories have no order: points
        style = {"color": "tab:blue", "zorder": 2, "markersize": 5 if numeric else 7}
        style["linestyle"] = "-" if numeric else "none"
        if points.errors is None:
            ax.plot(points.xs, points.ys, "o", **style)
        else:
            ax.errorbar(
                points.xs,
                points.ys,
                yerr=points.errors,
                fmt="o",
                capsize=4,
                label=SPREAD_LABEL,
                **style,
            )
        errors = points.errors or [0.0] * len(points.ys)
        low = min(y - e for y, e in zip(points.ys, errors, strict=True))
        high = max(y + e for y, e in zip(points.ys, errors, strict=True))
    else:
        low, high = 0.0, 1.0
        ax.text(
            0.5, 0.5, "no scores", transform=ax.transAxes, ha="center", va="center", color="gray"
        )
    pad = (high - low) * 0.12 or max(abs(high) * 0.1, 0.1)
    bottom = low - pad
    ax.set_ylim(bottom - pad * 0.6, high + pad)

    missing = sorted(set(range(len(values))) - set(good))
    if missing:
        ax.plot(
            [xs[i] for i in missing],
            [bottom] * len(missing),
            "x",
            linestyle="none",
            color="tab:red",
            markersize=8,
            markeredgewidth=2,
            zorder=3,
            label="no score",
        )

    label = winner_label(values, winner)
    if label is not None:
        assert winner is not None
        y = float(scores[winner]) if winner in good else bottom  # type: ignore[arg-type]
        ax.plot(
            [xs[winner]],
            [y],
            "*",
            color="gold",
            markeredgecolor="black",
            markersize=18,
            zorder=4,
            label=label,
            clip_on=False,
        )
    if label is not None or missing or points.errors is not None:
        ax.legend(
            loc="upper center",
            ncols=2,
            fontsize=LEGEND_FONTSIZE,
            markerscale=0.6,
            framealpha=0.85,
            borderaxespad=LEGEND_GAP,
        )


def make_room_for_legends(fig: Figure) -> None:
    """Raise each panel's y limit so that its legend sits in a band above every point.

    The legend's height is measured on the laid-out figure; the data (with the markers'
    size) is then kept below the band, so the legend covers no point whatever the scores.
    """
    panels = [ax for ax in fig.axes if ax.axison and ax.get_legend() is not None]
    if not panels:
        return
    fig.draw_without_rendering()
    for ax in panels:
        box = ax.get_window_extent()
        legend = ax.get_legend().get_window_extent()
        if box.height <= 0:
            continue
        # the band: the legend, its gap to the frame, and half the biggest marker
        marker = max((line.get_markersize() for line in ax.get_lines()), default=0.0)
        gap = LEGEND_GAP * LEGEND_FONTSIZE * fig.dpi / 72
        band = legend.height + 2 * gap + marker * fig.dpi / 144
        free = 1.0 - band / box.height  # the part of the panel the data may use
        if free <= 0.2:
            continue  # a panel too small for its legend: leave it as it is
        lower, upper = ax.get_ylim()
        top = max(line_top(ax), lower)
        ax.set_ylim(lower, max(upper, lower + (top - lower) / free))


def line_top(ax: Any) -> float:
    """The highest y of any point drawn on ``ax`` (its y limit when there is none)."""
    tops = [float(y) for line in ax.get_lines() for y in line.get_ydata()]
    return max(tops) if tops else ax.get_ylim()[1]


def chain_figure(
    steps: Sequence[Step],
    *,
    metric: str = "score",
    direction: str = "minimize",
    log_params: Collection[str] = (),
) -> Figure:
    """The chain sweep's figure (Agg canvas, no pyplot); :func:`plot_chain` saves it.

    Needs matplotlib (ImportError without it). The panels are ``figure.axes``, in step
    order; the unused cells of the last row are hidden (``axison`` is False).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, columns = grid(len(steps))
    fig = Figure(
        figsize=(PANEL_WIDTH * columns, PANEL_HEIGHT * rows + 0.5), dpi=DPI, layout="constrained"
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    logs = set(log_params)
    for k, ax in enumerate(axes.flat):
        if k < len(steps):
            step = steps[k]
            _draw_step(ax, step, metric=metric, log_scale=step[0] in logs)
        else:
            ax.set_axis_off()
            if not steps:
                ax.text(0.5, 0.5, "no chain steps", ha="center", va="center", color="gray")
    fig.suptitle(title(metric, direction))
    make_room_for_legends(fig)
    return fig


def plot_chain(
    steps: list[tuple[str, list[Any], list[float | None], int | None]],
    path: Path,
    *,
    metric: str = "score",
    direction: str = "minimize",
    log_params: Collection[str] = (),
) -> Path | None:
    """Draw a chain sweep: one panel per param step, score against value, the winner marked.

    Args:
        steps: one entry per chain step: (param name, the values swept in that step in
            order, the score of each value's run or None when it failed, went unscored or
            did not run, the index of the winning value or None).
        path: the PNG file to write (written atomically: a temporary file, then replaced).
        metric: the score's name, the y axis label.
        direction: ``minimize`` or ``maximize``, shown in the figure's title.
        log_params: params whose (positive, numeric) values go on a log x axis.

    Returns:
        The written file, or None when matplotlib is missing (then a warning says, once per
        process, how to get it).
    """
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError as error:
        _warn_once(error)
        return None
    fig = chain_figure(steps, metric=metric, direction=direction, log_params=log_params)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "xb") honours the umask as a plain write would (mkstemp's files are 0o600)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as out:
            fig.savefig(out, format="png", dpi=DPI)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path

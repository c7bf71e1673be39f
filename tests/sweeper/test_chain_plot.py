"""The chain sweep's picture: real PNG files drawn by real matplotlib, read back.

Whether matplotlib is imported (and what happens without it) is checked in fresh
interpreters, since this test process may have imported it already.
"""

import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ivory_hydra.sweeper.chain_plot import (
    DPI,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    SPREAD_LABEL,
    chain_figure,
    plot_chain,
    step_points,
)

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS = [
    ("model", ["logreg", "svm", "forest"], [0.05, 0.012, 0.03], 1),
    ("model.C", [0.01, 0.1, 1.0, 10.0, 100.0], [0.3, 0.05, None, 0.011, 0.012], 3),
]


def read_png(path: Path):
    """The image's pixels, after checking the file is a PNG."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path)


def size_of(path: Path) -> tuple[int, int]:
    height, width = read_png(path).shape[:2]
    return width, height


def draw(steps, path, **kwargs):
    """Write the plot, and return it with the panels of the same figure."""
    written = plot_chain(steps, path, **kwargs)
    assert read_png(written).shape[0] > 0
    return written, [ax for ax in chain_figure(steps, **kwargs).axes if ax.axison]


def test_writes_a_png_one_panel_wide_per_step(tmp_path):
    path = tmp_path / "chain.png"
    result = plot_chain(STEPS, path, metric="val_error", log_params={"model.C"})
    assert result == path and path.is_file()
    width, height = size_of(path)
    assert width == pytest.approx(2 * PANEL_WIDTH * DPI, abs=1)
    assert width / height == pytest.approx(2 * PANEL_WIDTH / (PANEL_HEIGHT + 0.5), rel=0.01)
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was replaced, not left


def test_more_than_four_steps_wrap_into_rows(tmp_path):
    steps = [(f"p{i}", [1, 2, 3], [3.0, 1.0, 2.0], 1) for i in range(6)]
    path = plot_chain(steps, tmp_path / "chain.png")
    width, height = size_of(path)
    assert width / height == pytest.approx(4 * PANEL_WIDTH / (2 * PANEL_HEIGHT + 0.5), rel=0.01)


def test_one_step(tmp_path):
    path = plot_chain([("lr", [0.1, 1.0], [0.5, 0.25], 1)], tmp_path / "one.png")
    width, height = size_of(path)
    assert width / height == pytest.approx(PANEL_WIDTH / (PANEL_HEIGHT + 0.5), rel=0.01)


def test_axes_titles_scales_and_categories(tmp_path):
    _, axes = draw(STEPS, tmp_path / "chain.png", metric="val_error", log_params={"model.C"})
    model, c = axes
    assert model.get_title() == "model" and c.get_title() == "model.C"
    assert model.get_ylabel() == c.get_ylabel() == "val_error"
    assert model.get_xscale() == "linear" and c.get_xscale() == "log"
    assert [t.get_text() for t in model.get_xticklabels()] == ["logreg", "svm", "forest"]
    assert list(model.get_xticks()) == [0, 1, 2]  # categories in the order swept
    assert [t.get_text() for t in c.get_xticklabels()] == ["0.01", "0.1", "1", "10", "100"]
    assert model.figure.get_suptitle() == "chain sweep (minimize val_error)"


def test_the_winner_is_starred_and_named(tmp_path):
    _, (model, c) = draw(STEPS, tmp_path / "chain.png", log_params={"model.C"})
    labels = [t.get_text() for t in model.get_legend().get_texts()]
    assert labels == ["winner: svm"]
    [star] = [line for line in model.get_lines() if line.get_marker() == "*"]
    assert list(star.get_xdata()) == [1.0] and list(star.get_ydata()) == [0.012]
    labels = [t.get_text() for t in c.get_legend().get_texts()]
    assert labels == ["no score", "winner: 10"]
    [star] = [line for line in c.get_lines() if line.get_marker() == "*"]
    assert list(star.get_xdata()) == [10.0]


def test_missing_scores_are_crosses_below_the_line(tmp_path):
    _, (_, c) = draw(STEPS, tmp_path / "chain.png", log_params={"model.C"})
    [line] = [line for line in c.get_lines() if line.get_marker() == "o"]
    assert list(line.get_xdata()) == [0.01, 0.1, 10.0, 100.0]  # the None score is skipped
    [crosses] = [line for line in c.get_lines() if line.get_marker() == "x"]
    assert list(crosses.get_xdata()) == [1.0]
    assert crosses.get_ydata()[0] < min(line.get_ydata())


def test_all_scores_missing_and_no_winner(tmp_path):
    steps = [("lr", [1e-3, 1e-2, 1e-1], [None, None, None], None)]
    _, (ax,) = draw(steps, tmp_path / "chain.png", log_params={"lr"})
    assert ax.get_xscale() == "log"
    assert not [line for line in ax.get_lines() if line.get_marker() in ("*", "o")]
    [crosses] = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(crosses.get_xdata()) == 3
    assert "no scores" in [t.get_text() for t in ax.texts]


def test_no_winner_has_no_star(tmp_path):
    steps = [("dropout", [0.0, 0.1, 0.2], [0.5, 0.4, 0.45], None)]
    _, (ax,) = draw(steps, tmp_path / "chain.png", direction="maximize", metric="acc")
    assert not [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert ax.get_legend() is None
    assert ax.figure.get_suptitle() == "chain sweep (maximize acc)"


def test_mixed_values_are_categories_and_log_needs_positive_numbers(tmp_path):
    steps = [
        ("max_depth", [4, 8, None], [0.1, 0.05, 0.02], 2),
        ("x", [0.0, 1.0, 10.0], [1.0, 2.0, 3.0], 0),  # 0 cannot go on a log axis
        ("flag", [True, False], [0.3, 0.2], 1),
    ]
    _, (depth, x, flag) = draw(steps, tmp_path / "chain.png", log_params={"x", "max_depth"})
    assert [t.get_text() for t in depth.get_xticklabels()] == ["4", "8", "None"]
    assert [t.get_text() for t in depth.get_legend().get_texts()] == ["winner: None"]
    assert x.get_xscale() == "linear"
    assert [t.get_text() for t in flag.get_xticklabels()] == ["True", "False"]


def test_no_steps_still_writes_a_picture(tmp_path):
    path = plot_chain([], tmp_path / "sub" / "chain.png")
    assert path == tmp_path / "sub" / "chain.png"
    assert read_png(path).shape[0] > 0


def test_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "chain.png"
    path.write_bytes(b"old")
    plot_chain(STEPS, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_leaves_pyplot_and_the_backend_alone(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import matplotlib
        raw_backend = lambda: dict.__getitem__(matplotlib.rcParams, "backend")  # no resolving
        before = raw_backend()
        from pathlib import Path
        from ivory_hydra.sweeper.chain_plot import plot_chain
        plot_chain([("a", [1, 2], [0.5, 0.25], 1)], Path({str(tmp_path / "c.png")!r}))
        assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
        assert raw_backend() == before
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_importing_the_module_does_not_import_matplotlib():
    code = "import ivory_hydra.sweeper.chain_plot, sys; assert 'matplotlib' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


BLOCK_MATPLOTLIB = """
import logging
import sys
from pathlib import Path


class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoMatplotlib())
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
from ivory_hydra.sweeper.chain_plot import plot_chain

steps = [("a", [1, 2], [0.5, 0.25], 1)]
first = plot_chain(steps, Path(sys.argv[1]) / "one.png")
second = plot_chain(steps, Path(sys.argv[1]) / "two.png")
print(first, second)
"""


def test_without_matplotlib_it_returns_none_and_warns_once(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_MATPLOTLIB, str(tmp_path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "None None"
    assert proc.stderr.count("pip install 'ivory-hydra[plot]'") == 1, proc.stderr
    assert "WARNING ivory_hydra.sweeper.chain_plot:" in proc.stderr
    assert not list(tmp_path.iterdir())


def marker_boxes(ax):
    """Every drawn point of a panel as a display-space box of its marker's size."""
    from matplotlib.transforms import Bbox

    dpi = ax.figure.dpi
    boxes = []
    for line in ax.get_lines():
        half = line.get_markersize() * dpi / 144  # points to pixels, halved
        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=True):
            cx, cy = ax.transData.transform((float(x), float(y)))
            boxes.append(Bbox.from_extents(cx - half, cy - half, cx + half, cy + half))
    return boxes


def test_categories_are_points_without_a_connecting_line(tmp_path):
    # a config group (model=resnet,vit) and strings: no order between the values
    steps = [
        ("model", ["resnet", "vit", "mlp"], [1.1, 1.3, 0.9], 2),
        ("lr", [0.01, 0.1, 1.0], [0.5, 0.2, 0.4], 1),
    ]
    _, (model, lr) = draw(steps, tmp_path / "chain.png", log_params={"lr"})
    [points] = [line for line in model.get_lines() if line.get_marker() == "o"]
    assert points.get_linestyle() == "None"  # points, not a polyline
    assert list(points.get_xdata()) == [0.0, 1.0, 2.0]  # in the order swept
    assert [t.get_text() for t in model.get_xticklabels()] == ["resnet", "vit", "mlp"]
    for line in model.get_lines():
        assert line.get_linestyle() == "None", line.get_label()
    # an ordered (numeric) param keeps its line
    [trend] = [line for line in lr.get_lines() if line.get_marker() == "o"]
    assert trend.get_linestyle() == "-"


@pytest.mark.parametrize(
    "steps",
    [
        # the case: the highest score is the rightmost point
        [("model", ["resnet", "vit"], [1.1, 1.3], 0)],
        [("dropout", [0.0, 0.1, 0.2], [0.0, 0.1, 0.2], 0)],
        # highest at both ends, a missing score (two legend rows' worth of entries)
        [("lr", [1e-3, 1e-2, 1e-1, 1.0, 10.0], [4.1, None, 0.1, 1.1, 4.1], 2)],
        # all equal, and a winner with no score
        [("a", [1, 2, 3], [0.5, 0.5, 0.5], 0), ("b", ["x", "y"], [None, 2.0], 0)],
        # repeats: error bars reach above the highest aggregate
        [
            ("lr", [0.1, 0.01, 0.001], [0.82, 0.28, 0.9], 1, [0.4025, 0.0447, 0.0]),
            ("model", ["a", "b"], [0.3, 0.5], 0, [0.1, 0.2]),
        ],
    ],
)
def test_the_legend_covers_no_point(tmp_path, steps):
    fig = chain_figure(steps, log_params={"lr"})
    fig.canvas.draw()  # the layout the PNG gets
    panels = [ax for ax in fig.axes if ax.axison]
    assert panels
    for ax in panels:
        legend = ax.get_legend()
        assert legend is not None
        box = legend.get_window_extent()
        points = marker_boxes(ax)
        assert points
        covered = [p for p in points if box.overlaps(p)]
        assert not covered, (ax.get_title(), box, covered)
        # and the points stay inside the panel
        frame = ax.get_window_extent()
        for p in points:
            assert frame.y0 - 1 <= (p.y0 + p.y1) / 2 <= frame.y1 + 1


FOLDS = {0.1: [0.1, 1.0, 1.0, 1.0, 1.0], 0.01: [0.2, 0.3, 0.3, 0.3, 0.3], 0.001: [0.9] * 5}


def test_repeats_draw_each_aggregate_with_its_std_as_an_error_bar(tmp_path):
    from matplotlib.container import ErrorbarContainer

    from ivory_hydra.core.aggregate import aggregate

    values = list(FOLDS)
    stats = [aggregate("mean", FOLDS[v]) for v in values]  # as the engine aggregates
    step = ("lr", values, [a.score for a in stats], 1, [a.std for a in stats])
    points = step_points(values, step[2], step[4], numeric=True)
    assert points.xs == [0.001, 0.01, 0.1]  # along the axis
    assert points.ys == pytest.approx([0.9, 0.28, 0.82])  # the means of the folds
    assert points.errors == pytest.approx([0.0, statistics.stdev(FOLDS[0.01]), 0.4025], abs=1e-4)

    _, [ax] = draw([step], tmp_path / "chain.png", log_params={"lr"})
    [bars] = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    line, _caps, [vertical] = bars.lines
    assert list(line.get_xdata()) == points.xs
    assert list(line.get_ydata()) == pytest.approx(points.ys)
    halves = [(end[1] - start[1]) / 2 for start, end in vertical.get_segments()]
    assert halves == pytest.approx(points.errors)  # one std above and below
    assert SPREAD_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]


def test_without_repeats_there_are_no_error_bars(tmp_path):
    from matplotlib.container import ErrorbarContainer

    _, axes = draw(STEPS, tmp_path / "chain.png", log_params={"model.C"})
    for ax in axes:
        assert not [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert SPREAD_LABEL not in labels

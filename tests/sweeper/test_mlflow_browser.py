"""MLflow's UI opens on a sweep's runs with the score shown: a real sweep, a real
``mlflow server`` on its store, and a real headless Chromium driven by Playwright.

MLflow 3.17 starts a fresh browser on its GenAI pages; the link that the sweep
prints must open the runs table itself (see ``ivory_hydra/stores/mlflow_ui.py``).
Chromium is Debian's (``apt-get install chromium``, which ``.ci/run`` does);
Playwright drives it, and never downloads a browser of its own.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import run_app
from mlflow_server import start_mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.mlflow_server]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The runs table's rows: ag-grid splits a row into a pinned and a scrolled part,
#: both with the row's index; every cell names its column (``metrics.`score```).
READ_TABLE = """() => {
  const rows = {};
  for (const row of document.querySelectorAll('[role="row"][row-index]')) {
    const cells = rows[row.getAttribute('row-index')] ||= {};
    for (const cell of row.querySelectorAll('[role="gridcell"][col-id]')) {
      cells[cell.getAttribute('col-id')] = cell.innerText.trim();
    }
  }
  const headers = [...document.querySelectorAll('[role="columnheader"][col-id]')]
    .map(h => [h.getAttribute('col-id'), h.innerText.trim()]);
  return {rows, headers};
}"""


def browser(playwright):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)


def read_runs_table(url: str, screenshot: Path) -> tuple[dict, dict]:
    """Open ``url`` in Chromium; return the runs table's rows (in order) and headers."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = browser(playwright)
        try:
            page = chromium.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url, timeout=120_000)
            # the child runs' names, once the runs of the saved view are loaded
            page.locator('[role="gridcell"][col-id="metrics.`score`"]').first.wait_for(
                timeout=120_000
            )
            page.get_by_text("run#3", exact=True).first.wait_for(timeout=60_000)
            page.screenshot(path=str(screenshot))
            table = page.evaluate(READ_TABLE)
        finally:
            chromium.close()
    rows = [table["rows"][k] for k in sorted(table["rows"], key=int)]
    return rows, dict(table["headers"])


def run_name(cell: str) -> str:
    return cell.splitlines()[-1]  # the run's colour, then its name


def test_the_printed_link_opens_the_sweeps_runs_with_the_score(tmp_path):
    result = run_app(tmp_path, "a=1-3", "model=small,large")
    assert result.returncode == 0, result.output
    [link] = re.findall(r"then open (http://\S+)", result.output)
    assert link.startswith("http://127.0.0.1:5000/#/experiments/")
    # the same store, served by a real tracking server on a free port instead of 5000
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with start_mlflow_server(tmp_path / "server", backend_store_uri=store) as server:
        url = link.replace("http://127.0.0.1:5000", server)
        rows, headers = read_runs_table(url, tmp_path / "mlflow-runs.png")

    # the runs table, with the score and the swept values as columns
    assert headers.get("metrics.`score`") == "score", headers
    assert headers.get("params.`a`") == "a" and headers.get("params.`model`") == "model"
    names = [run_name(r["attributes.`Run Name`"]) for r in rows]
    # the sweep's six child runs, flat (no parent row), best first
    assert sorted(names) == [f"run#{n}" for n in range(6)], names
    scores = [float(r["metrics.`score`"]) for r in rows]
    assert scores == sorted(scores) == [0.0, 0.5, 1.0, 1.0, 1.5, 1.5], scores
    assert names[:2] == ["run#3", "run#2"]  # a=2 large, then a=2 small
    assert rows[0]["params.`a`"] == "2" and rows[0]["params.`model`"] == "large"

"""`make demo` on this checkout: it runs, and the hints it prints work as printed."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def make_demo(demo: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        ["make", "--no-print-directory", "demo", f"DEMO_DIR={demo}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )


def test_make_demo_prints_hints_whose_commands_work(tmp_path):
    demo = tmp_path / "demo"
    done = make_demo(demo)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    hints = done.stdout.split("Where to look", 1)[1].splitlines()[1:]
    found = {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in hints
        if ":" in line
    }
    assert set(found) >= {"results", "chain plot", "Optuna", "MLflow"}
    # the results command works from where make ran, as printed
    shown = subprocess.run(found["results"], shell=True, cwd=ROOT, capture_output=True, text=True)
    assert shown.returncode == 0 and "best:" in shown.stdout
    assert (ROOT / found["chain plot"]).is_file()
    for name in ("Optuna", "MLflow"):
        executable, *args = shlex.split(found[name])
        assert os.access(ROOT / executable, os.X_OK), found[name]
        store = Path(args[-1].removeprefix("sqlite:///"))
        assert store.is_file(), found[name]
    # the link to the sweep's runs in `mlflow ui` (tests/sweeper/test_mlflow_browser.py
    # opens such a link in a browser)
    link = found["then open"]
    assert link.startswith("http://127.0.0.1:5000/#/experiments/"), link
    assert "workflowType=machine_learning&viewStateShareKey=ivory-task0" in link
    # and a second demo resumes: nothing left to run, the same link
    again = make_demo(demo)
    assert again.returncode == 0 and "nothing to run" in again.stdout + again.stderr
    assert f"then open:   {link}\n" in again.stdout

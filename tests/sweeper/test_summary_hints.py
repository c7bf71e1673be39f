"""Where to look, at the end of a sweep: the optuna-dashboard line with and without it."""

import os
import textwrap

import pytest
from conftest import run_app

pytestmark = pytest.mark.slow

#: Makes optuna_dashboard unimportable in the app's process, as in an install without [ui].
BLOCKER = """
import sys


class NoDashboard:
    def find_spec(self, name, path=None, target=None):
        if name == "optuna_dashboard" or name.startswith("optuna_dashboard."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoDashboard())
"""


def test_the_dashboard_line_says_how_to_install_it_when_it_is_missing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    path = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    run = tmp_path / "run"
    run.mkdir()
    result = run_app(run, "hydra.sweeper.mlflow.enabled=false", "a=1,2", env={"PYTHONPATH": path})
    assert result.returncode == 0, result.output
    storage = f"sqlite:///{run}/optuna.db"
    assert f"Optuna:  pip install 'ivory-hydra[ui]', then optuna-dashboard {storage}" in (
        result.output
    )


def test_the_dashboard_line_is_the_command_when_it_is_installed(tmp_path):
    pytest.importorskip("optuna_dashboard")
    result = run_app(tmp_path, "hydra.sweeper.mlflow.enabled=false", "a=1,2")
    assert result.returncode == 0, result.output
    assert f"Optuna:  optuna-dashboard sqlite:///{tmp_path}/optuna.db\n" in result.output
    assert "ivory-hydra[ui]" not in result.output
    assert "MLflow:" not in result.output  # MLflow off: no line about it

"""The plugin module is a thin shell: registration only, nothing heavy at start-up."""

import subprocess
import sys

import pytest
from conftest import APPS

from ivory_hydra.stores.mlflow_bound import DEFAULT_TIMEOUT

pytestmark = pytest.mark.slow


def app(*args, cwd):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


PROBE = """
import atexit, runpy, sys

def report():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    names = [p.__name__ for p in Plugins.instance().discover(Sweeper)]
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"mlflow", "optuna", "sqlalchemy"})
    print("PROBE", "IvorySweeper" in names, ",".join(heavy) or "-")

atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("mlflow", ["true", "false"])
def test_help_imports_neither_mlflow_nor_optuna(tmp_path, mlflow):
    result = app(
        "-c",
        PROBE,
        str(APPS / "sweep/app.py"),
        "--help",
        f"hydra.sweeper.mlflow.enabled={mlflow}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Powered by Hydra" in result.stdout
    probe = result.stdout.strip().splitlines()[-1]
    assert probe == "PROBE True -"  # the plugin was scanned; nothing heavy was imported


def test_info_plugins_lists_the_sweeper(tmp_path):
    result = app(str(APPS / "sweep/app.py"), "--info", "plugins", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "IvorySweeper" in result.stdout
    assert "hydra_plugins.ivory_hydra.ivory_sweeper" in result.stdout


def test_cfg_hydra_shows_every_config_field(tmp_path):
    result = app(
        str(APPS / "sweep/typed.py"),
        "hydra/sweeper=ivory",
        "--cfg",
        "hydra",
        "--package",
        "hydra.sweeper",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    import yaml

    conf = yaml.safe_load(result.stdout)
    assert conf == {
        "_target_": "hydra_plugins.ivory_hydra.ivory_sweeper.IvorySweeper",
        "_recursive_": False,
        "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": None},
        "pruner": None,
        "n_trials": None,
        "n_jobs": None,
        "max_failure_rate": None,
        "timeout": None,
        "max_failures": None,
        "custom_search_space": None,
        "mode": "product",
        "use_best_param": True,
        "metric": None,
        "direction": "minimize",
        "repeat": [],
        "aggregate": "mean",
        "params": {},
        "max_batch_size": None,
        "storage": None,
        "study_name": None,
        "mlflow": {
            "enabled": True,
            "tracking_uri": None,
            "experiment_name": None,
            "timeout": DEFAULT_TIMEOUT,
        },
        "verbose": 1,
        "dry_run": False,
        "heartbeat_interval": 10.0,
        "grace_period": 60.0,
        "storage_retry": 300.0,
        "devices": None,
        "devices_per_job": 1,
    }

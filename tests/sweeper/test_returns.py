"""What the sweep returns to Hydra: every job's JobReturn, configs read back from its folder.

Real sweeps through ``hydra.test_utils``' sweep runner (Hydra's own API for
running a multirun in-process and reading its returns).
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import APPS
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.test_utils.test_utils import verify_dir_outputs
from omegaconf import DictConfig, OmegaConf

from ivory_hydra.sweeper.returns import StoredJobReturn

pytestmark = pytest.mark.filterwarnings("ignore:Future Hydra versions:UserWarning")


class Recorder:
    """A task function that records what each job saw."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict[str, Any]] = {}

    def __call__(self, cfg: DictConfig) -> float:
        hydra_cfg = HydraConfig.get()
        self.jobs[cfg.a] = {
            "cfg": OmegaConf.to_container(cfg, resolve=False),
            "output_dir": hydra_cfg.runtime.output_dir,
            "override_dirname": hydra_cfg.job.override_dirname,
        }
        return cfg.a * 10.0


def sweep(hydra_sweep_runner, tmp_path, recorder: Recorder, *overrides: str) -> Any:
    """Hydra's in-process sweep runner on the sweep app, stores in ``tmp_path``."""
    return hydra_sweep_runner(
        calling_file=str(APPS / "sweep/app.py"),
        calling_module=None,
        task_function=recorder,
        config_path="conf",
        config_name="config",
        overrides=[
            f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",
            "hydra.sweeper.mlflow.enabled=false",
            "hydra.sweeper.verbose=0",
            *overrides,
        ],
    )


def test_returns_read_their_configs_from_each_jobs_folder(hydra_sweep_runner, tmp_path):
    recorder = Recorder()
    run = sweep(
        hydra_sweep_runner,
        tmp_path,
        recorder,
        "hydra.sweeper.max_batch_size=2",
        "hydra.job.chdir=true",  # as verify_dir_outputs expects
        "a=0,1,2",
    )
    with run:
        returns = [r for batch in run.returns for r in batch]
        assert [r.return_value for r in returns] == [0.0, 10.0, 20.0]
        for result in returns:
            assert isinstance(result, StoredJobReturn)
            assert result.status == JobStatus.COMPLETED
            assert not [k for k, v in vars(result).items() if isinstance(v, DictConfig)]
            job = recorder.jobs[result.cfg.a]
            assert OmegaConf.to_container(result.cfg, resolve=False) == job["cfg"]
            assert result.hydra_cfg.hydra.runtime.output_dir == job["output_dir"]
            assert result.hydra_cfg.hydra.job.override_dirname == job["override_dirname"]
            assert result.cfg is not result.cfg  # read from the folder at each access, not kept
            verify_dir_outputs(result, result.overrides)  # Hydra's own check of a return
        with pytest.raises(AttributeError, match="read from its folder"):
            returns[0].cfg = OmegaConf.create({})


def test_returns_without_saved_configs_keep_them_in_memory(hydra_sweep_runner, tmp_path):
    run = sweep(hydra_sweep_runner, tmp_path, Recorder(), "hydra.output_subdir=null", "a=0,1")
    with run:
        returns = [r for batch in run.returns for r in batch]
        assert [type(r) for r in returns] == [JobReturn, JobReturn]
        assert [r.cfg.a for r in returns] == [0, 1]
        assert all(isinstance(r.hydra_cfg, DictConfig) for r in returns)

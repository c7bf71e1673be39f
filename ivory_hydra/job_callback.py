"""Runs in each job's own process: makes the job's MLflow child run active.

The sweeper adds this callback to Hydra's callbacks before launching, and
passes each job's child run id through ``hydra.job.env_set``, which every
launcher applies in the job process. It holds only strings, so it pickles to
joblib, Ray and submitit workers.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

RUN_ID_ENV = "IVORY_HYDRA_MLFLOW_RUN_ID"


def run_id_override(run_id: str) -> str:
    """The job override that hands a child run id to the job.

    >>> run_id_override("abc")
    '++hydra.job.env_set.IVORY_HYDRA_MLFLOW_RUN_ID=abc'
    """
    return f"++hydra.job.env_set.{RUN_ID_ENV}={run_id}"


def redacted_copy(folder: Path, into: Path) -> Path:
    """Copy ``folder`` into ``into`` with URL passwords hidden in its text files.

    ``.hydra/hydra.yaml`` records the overrides, a storage URL's password too.
    """
    from ivory_hydra.mirror import redact_text

    target = into / folder.name
    target.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.is_file():
            try:
                (target / path.name).write_text(redact_text(path.read_text()))
            except UnicodeDecodeError:
                (target / path.name).write_bytes(path.read_bytes())
    return target


class MlflowJobCallback(Callback):
    """Activates the job's child run on start and closes it on end."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._active = False

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Make the job's child run the active MLflow run."""
        run_id = OmegaConf.select(config, f"hydra.job.env_set.{RUN_ID_ENV}")
        self._active = False
        if not run_id:
            return
        from ivory_hydra.mirror import activate_child

        activate_child(self.tracking_uri, str(run_id))
        self._active = True

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Log the job's ``.hydra`` folder and end the run, FAILED if the job raised."""
        if not self._active:
            return
        self._active = False
        from hydra.core.utils import JobStatus

        from ivory_hydra.mirror import deactivate_child

        failed = job_return.status == JobStatus.FAILED
        error = None
        if failed:
            exc = job_return._return_value
            error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        subdir = OmegaConf.select(config, "hydra.output_subdir")
        output_dir = OmegaConf.select(config, "hydra.runtime.output_dir")
        folder = Path(output_dir) / subdir if subdir and output_dir else None
        if folder is None or not folder.is_dir():
            deactivate_child(failed=failed, error=error)
            return
        with tempfile.TemporaryDirectory() as tmp:
            deactivate_child(
                failed=failed, error=error, artifact_dirs=[redacted_copy(folder, Path(tmp))]
            )

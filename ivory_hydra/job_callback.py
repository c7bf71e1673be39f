"""Runs in each job's own process: makes the job's MLflow child run active.

The sweeper adds this callback to Hydra's callbacks and, before each launch,
gives it the batch's child run ids by job number (``hydra.job.num``). Launchers
ship Hydra's callbacks with every job, so the map reaches joblib, Ray and
submitit workers; it holds only strings and ints, so it pickles.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


def redacted_copy(folder: Path, into: Path) -> Path:
    """Copy ``folder`` into ``into`` with URL passwords hidden in its text files.

    ``.hydra/hydra.yaml`` records the overrides, a storage URL's password too.
    """
    from ivory_hydra.redact import redact_text

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
        self.run_ids: dict[int, str] = {}  # job number -> child run id, set per batch
        self._active = False

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Make the job's child run the active MLflow run."""
        self._active = False
        run_id = self.run_ids.get(OmegaConf.select(config, "hydra.job.num"))
        if not run_id:
            return
        from ivory_hydra.active_run import activate_child

        activate_child(self.tracking_uri, run_id)
        self._active = True

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """Log the job's ``.hydra`` folder and end the run, FAILED if the job raised."""
        if not self._active:
            return
        self._active = False
        from hydra.core.utils import JobStatus

        from ivory_hydra.active_run import deactivate_child

        failed = job_return.status == JobStatus.FAILED
        error = None
        if failed:
            exc = job_return._return_value
            error = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        subdir = OmegaConf.select(config, "hydra.output_subdir")
        output_dir = OmegaConf.select(config, "hydra.runtime.output_dir")
        folder = Path(output_dir) / subdir if subdir and output_dir else None
        with tempfile.TemporaryDirectory() as tmp:
            folders = [redacted_copy(folder, Path(tmp))] if folder and folder.is_dir() else []
            closed = deactivate_child(failed=failed, error=error, artifact_dirs=folders)
        # Travels back with the job's result, from any launcher: the sweep need
        # not end this run again.
        job_return.ivory_child_closed_failed = failed if closed else None

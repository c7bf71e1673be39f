"""The job side of the MLflow mirror: the job's child run is MLflow's *active* run.

:func:`activate_child` and :func:`deactivate_child` run inside the job's own
process (the sweep's, a loky worker, a Ray actor, a SLURM job), so that
``mlflow.log_metric`` in user code lands in the child run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ivory_hydra.mlflow_store import (
    ERROR_TAG,
    MAX_ERROR_TAG_LENGTH,
    client_for,
    error_code,
    is_locked_error,
    retry,
    truncate,
)
from ivory_hydra.redact import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.tracking import MlflowClient

_log = logging.getLogger(__name__)

_job_state = threading.local()


def activate_child(tracking_uri: str, run_id: str) -> None:
    """Make ``run_id`` MLflow's active run in this thread of the job process.

    Sets the process's tracking URI, ends any run left active in this thread
    and resumes the child run with ``mlflow.start_run(run_id=...)``. User code
    calling ``mlflow.log_metric`` then logs to the child.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    _end_leftovers()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        retry(mlflow.start_run, run_id=run_id)
    except MlflowException as exc:
        if is_locked_error(exc) or error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise
        # e.g. a job before this one in this worker called mlflow.set_experiment
        # with another experiment: start_run refuses runs of other experiments.
        run = retry(client_for(tracking_uri).get_run, run_id)
        mlflow.set_experiment(experiment_id=run.info.experiment_id)
        retry(mlflow.start_run, run_id=run_id)
    _job_state.current = (tracking_uri, run_id)


def _end_leftovers() -> None:
    import mlflow

    previous = getattr(_job_state, "current", None)
    _job_state.current = None
    for _ in range(100):
        run = mlflow.active_run()
        if run is None:
            return
        ours = previous is not None and run.info.run_id == previous[1]
        _log.warning(
            "Ending MLflow run %s left active in this process%s",
            run.info.run_id,
            " by an earlier job" if ours else "",
        )
        _end_active_run("KILLED" if ours else "FINISHED")


def _end_active_run(status: str, client: MlflowClient | None = None) -> None:
    """``mlflow.end_run(status)``, writing the status again if that failed.

    ``end_run`` pops the run before it writes the status through the global
    tracking URI. If the write fails on a lock, or at all when ``client`` (the
    run's own store) is given, the status is written again with a retry.
    """
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return
    try:
        mlflow.end_run(status)
    except Exception as exc:
        still = mlflow.active_run()
        if still is not None and still.info.run_id == run.info.run_id:
            raise
        if client is None:
            if not is_locked_error(exc):
                raise
            client = mlflow.MlflowClient()
        retry(client.set_terminated, run.info.run_id, status)


def deactivate_child(
    *,
    failed: bool,
    error: str | None = None,
    artifact_dirs: Sequence[Path] = (),
) -> bool:
    """Upload the job's artifacts, record a failure, end the active child run.

    Each directory in ``artifact_dirs`` is logged under its own name (the
    job's ``.hydra`` folder becomes artifact path ``.hydra``). On failure the
    tail of ``error`` becomes the tag ``ivory.error`` and the full text the
    artifact ``error.txt``. Runs the user left open inside the child are ended
    too. Never raises: problems are logged as warnings. Returns True when the
    child run was ended with its status.
    """
    state = getattr(_job_state, "current", None)
    _job_state.current = None
    if state is None:
        _log.warning("deactivate_child() without activate_child(); nothing to end")
        return False
    tracking_uri, run_id = state
    status = "FAILED" if failed else "FINISHED"
    try:
        client = client_for(tracking_uri)
    except Exception as exc:
        _log.warning("MLflow client for %s failed: %s", redact_url(tracking_uri), exc)
        return False
    for directory in artifact_dirs:
        path = Path(directory)
        try:
            if path.is_dir():
                retry(client.log_artifacts, run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                retry(client.log_artifact, run_id, str(path))
        except Exception as exc:
            _log.warning("Could not log artifacts %s to MLflow run %s: %s", path, run_id, exc)
    if failed and error:
        try:
            retry(
                client.set_tag,
                run_id,
                ERROR_TAG,
                truncate(error.strip(), MAX_ERROR_TAG_LENGTH, tail=True),
            )
            retry(client.log_text, run_id, error, "error.txt")
        except Exception as exc:
            _log.warning("Could not record the error in MLflow run %s: %s", run_id, exc)
    return _end_child(client, run_id, status)


def abandon_child(error: str) -> None:
    """End, as FAILED, a child run left active in this process by an interrupted job.

    Without this, MLflow's exit hook would end it as FINISHED.
    """
    if getattr(_job_state, "current", None) is not None:
        deactivate_child(failed=True, error=error)


def _end_child(client: MlflowClient, run_id: str, status: str) -> bool:
    try:
        import mlflow

        ended = False
        for _ in range(100):
            run = mlflow.active_run()
            if run is None:
                break
            ended = run.info.run_id == run_id
            # also ends runs the user left open inside ours
            _end_active_run(status, client if ended else None)
            if ended:
                break
        if not ended:
            # The user ended our run already, or it is not on this thread's stack.
            retry(client.set_terminated, run_id, status)
        return True
    except Exception as exc:
        _log.warning("Could not end MLflow run %s as %s: %s", run_id, status, exc)
        return False

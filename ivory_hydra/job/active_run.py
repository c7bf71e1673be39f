"""The job's MLflow child run as MLflow's *active* run, inside the job's own process.

:func:`activate` runs where the job runs (the sweep's process, a loky worker,
a Ray actor, a SLURM job), so that ``mlflow.log_metric`` in user code lands in
the child run; :func:`deactivate` logs the run's outcome and ends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ivory_hydra.core.redact import redact_url
from ivory_hydra.stores import mlflow_client
from ivory_hydra.stores.format import ERROR_ARTIFACT, Tag

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.tracking import MlflowClient

_log = logging.getLogger(__name__)

_job_state = threading.local()


def activate(tracking_uri: str, run_id: str) -> None:
    """Make ``run_id`` MLflow's active run in this thread of the job process.

    Sets the process's tracking URI, ends any run left active in this thread
    and resumes the child run with ``mlflow.start_run(run_id=...)``.
    """
    mlflow_client.client_for(tracking_uri)  # no "View run" lines with passwords in them
    import mlflow
    from mlflow.exceptions import MlflowException

    _end_leftovers()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow_client.retry(mlflow.start_run, run_id=run_id)
    except MlflowException as exc:
        if (
            mlflow_client.is_locked_error(exc)
            or mlflow_client.error_code(exc) == "RESOURCE_DOES_NOT_EXIST"
        ):
            raise
        # e.g. a job before this one in this worker called mlflow.set_experiment
        # with another experiment: start_run refuses runs of other experiments.
        run = mlflow_client.retry(mlflow_client.client_for(tracking_uri).get_run, run_id)
        mlflow.set_experiment(experiment_id=run.info.experiment_id)
        mlflow_client.retry(mlflow.start_run, run_id=run_id)
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
            if not mlflow_client.is_locked_error(exc):
                raise
            client = mlflow.MlflowClient()
        mlflow_client.end_run(client, run.info.run_id, status)


def active_run_id() -> str | None:
    """The child run this thread activated, if any."""
    state = getattr(_job_state, "current", None)
    return None if state is None else state[1]


def latest_metric(key: str) -> float | None:
    """The latest value of ``key`` logged to the active child run, or None."""
    state = getattr(_job_state, "current", None)
    if state is None:
        return None
    tracking_uri, run_id = state
    value = mlflow_client.retry(
        mlflow_client.client_for(tracking_uri).get_run, run_id
    ).data.metrics.get(key)
    return None if value is None else float(value)


def deactivate(
    status: str,
    *,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    error: str | None = None,
    artifact_dirs: Sequence[Path] = (),
) -> bool:
    """Log the run's outcome and end the active child run with ``status``.

    Metrics and tags go in one batch; each folder in ``artifact_dirs`` is
    uploaded under its own name (the job's ``.hydra`` folder becomes
    ``.hydra``); ``error`` (a traceback) becomes the tag ``ivory.error`` (its
    tail) and the artifact ``error.txt``. Runs the user left open inside the
    child are ended too. Never raises: problems are logged as warnings.
    Returns True when the child run was ended with its status.
    """
    state = getattr(_job_state, "current", None)
    _job_state.current = None
    if state is None:
        return False
    tracking_uri, run_id = state
    try:
        client = mlflow_client.client_for(tracking_uri)
        all_tags = dict(tags or {})
        if error:
            all_tags[Tag.ERROR] = mlflow_client.truncate(
                error.strip(), mlflow_client.MAX_ERROR_TAG_LENGTH, tail=True
            )
        mlflow_client.log_batch(client, run_id, metrics=metrics, tags=all_tags)
    except Exception as exc:  # noqa: BLE001 - the job's result is in Optuna already
        _log.warning("Could not log the outcome to MLflow run %s: %s", run_id, exc)
        client = None
    if client is not None:
        for directory in artifact_dirs:
            try:
                mlflow_client.retry(
                    client.log_artifacts, run_id, str(directory), artifact_path=directory.name
                )
            except Exception as exc:  # noqa: BLE001
                _log.warning(
                    "Could not log artifacts %s to MLflow run %s: %s", directory, run_id, exc
                )
        if error:
            try:
                mlflow_client.retry(client.log_text, run_id, error, ERROR_ARTIFACT)
            except Exception as exc:  # noqa: BLE001
                _log.warning("Could not log the error to MLflow run %s: %s", run_id, exc)
    return _end_child(tracking_uri, run_id, status)


def end_elsewhere(tracking_uri: str, run_id: str, status: str, tags: Mapping[str, str]) -> None:
    """End a child run from a thread other than the one it is active in (never raises)."""
    try:
        client = mlflow_client.client_for(tracking_uri)
        mlflow_client.log_batch(client, run_id, tags=tags)
        mlflow_client.end_run(client, run_id, status)
    except Exception as exc:  # noqa: BLE001
        _log.warning("Could not end MLflow run %s as %s: %s", run_id, status, exc)


def _end_child(tracking_uri: str, run_id: str, status: str) -> bool:
    try:
        import mlflow

        client = mlflow_client.client_for(tracking_uri)
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
            mlflow_client.end_run(client, run_id, status)
        return True
    except Exception as exc:  # noqa: BLE001
        _log.warning(
            "Could not end MLflow run %s as %s in %s: %s",
            run_id,
            status,
            redact_url(tracking_uri),
            exc,
        )
        return False

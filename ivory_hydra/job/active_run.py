"""The job's MLflow child run as MLflow's *active* run, inside the job's own process.

:func:`activate` runs where the job runs (the sweep's process, a loky worker,
a Ray actor, a SLURM job), so that ``mlflow.log_metric`` in user code lands in
the child run; :func:`deactivate` logs the run's outcome and ends it.

MLflow's active run is thread-local, so it is made active (and taken off again)
on the job's own thread, without a store call; the store calls (reading the run,
logging the outcome, ending it) run under the job's :class:`Budget`, which never
lets them hold the job longer than ``mlflow.timeout`` in total. Past it the job
goes on without its run, and the closer or the next run of the command settles
the run from the trial.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ivory_hydra._compat import pop_active_run, push_active_run
from ivory_hydra.stores import mlflow_client
from ivory_hydra.stores.format import ERROR_ARTIFACT, Tag
from ivory_hydra.stores.mlflow_bound import Budget, MirrorLagging

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities import Run

_log = logging.getLogger(__name__)

_job_state = threading.local()


@dataclass(frozen=True)
class _Active:
    budget: Budget  # its store is the run's tracking URI
    run_id: str
    artifact_uri: str


def activate(tracking_uri: str, run_id: str, budget: Budget | None = None) -> None:
    """Make ``run_id`` MLflow's active run in this thread of the job process.

    Sets the process's tracking URI, ends any run left active in this thread,
    reads the run (the only store call; none when this process created it) and
    puts it on MLflow's active-run stack. ``budget`` (default: ``mlflow.timeout``'s
    default) bounds the store calls of the job's run from here to its end; raises
    :class:`MirrorLagging` when the store does not answer within it.
    """
    mlflow_client.load_mlflow(tracking_uri)  # seconds in a new process, but no store is waited for
    import mlflow

    budget = budget or Budget(tracking_uri)
    leftovers = _pop_leftovers()
    mlflow.set_tracking_uri(tracking_uri)
    run = mlflow_client.created_run(run_id)  # made by this process: nothing to read
    if run is None or leftovers:
        run = budget.call(_read_run, tracking_uri, run_id, leftovers)
    push_active_run(run)
    _job_state.current = _Active(budget, run_id, run.info.artifact_uri)


def _pop_leftovers() -> list[tuple[str, str]]:
    """Take the runs left active in this thread off the stack: (run id, status to end with)."""
    previous = getattr(_job_state, "current", None)
    _job_state.current = None
    leftovers = []
    while (run := pop_active_run()) is not None:
        ours = previous is not None and run.info.run_id == previous.run_id
        _log.warning(
            "Ending MLflow run %s left active in this process%s",
            run.info.run_id,
            " by an earlier job" if ours else "",
        )
        leftovers.append((run.info.run_id, "KILLED" if ours else "FINISHED"))
    return leftovers


def _read_run(tracking_uri: str, run_id: str, leftovers: Sequence[tuple[str, str]]) -> Run:
    client = mlflow_client.client_for(tracking_uri)
    for other, status in leftovers:
        mlflow_client.end_run(client, other, status)
    return mlflow_client.retry(client.get_run, run_id)


def active_run_id() -> str | None:
    """The child run this thread activated, if any."""
    state = getattr(_job_state, "current", None)
    return None if state is None else state.run_id


def latest_metric(key: str) -> float | None:
    """The latest value of ``key`` logged to the active child run (None: not logged, or
    MLflow did not answer within the job's budget)."""
    state = getattr(_job_state, "current", None)
    if state is None:
        return None

    def read() -> float | None:
        client = mlflow_client.client_for(state.budget.store)
        value = mlflow_client.retry(client.get_run, state.run_id).data.metrics.get(key)
        return None if value is None else float(value)

    try:
        return state.budget.call(read)
    except MirrorLagging:
        return None


def log_metric(key: str, value: float, step: int) -> None:
    """Log a metric to the active child run, within the job's budget (never raises)."""
    state = getattr(_job_state, "current", None)
    if state is None:
        return

    def write() -> None:
        client = mlflow_client.client_for(state.budget.store)
        mlflow_client.retry(client.log_metric, state.run_id, key, value, step=step)

    with contextlib.suppress(MirrorLagging):
        state.budget.call(write)


def deactivate(
    status: str,
    *,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    error: str | None = None,
    artifact_dirs: Sequence[Path] = (),
) -> bool:
    """Log the run's outcome and end the active child run with ``status``.

    Runs the user left open inside the child are taken off MLflow's stack and
    ended with it. Metrics and tags go in one batch, then the status; then each
    folder in ``artifact_dirs`` is uploaded under its own name (the job's
    ``.hydra`` folder becomes ``.hydra``) and ``error`` (a traceback) becomes the
    tag ``ivory.error`` (its tail) and the artifact ``error.txt``. Never raises.
    Returns True when the child run was ended with its status within the budget.
    """
    state = getattr(_job_state, "current", None)
    _job_state.current = None
    if state is None:
        return False
    inner = []
    while (run := pop_active_run()) is not None and run.info.run_id != state.run_id:
        inner.append(run.info.run_id)  # the user's runs, left open inside ours
    if run is None and inner:  # ours was ended by the user already: the rest are leftovers
        _log.warning("Ending MLflow runs left active by the job: %s", ", ".join(inner))
    all_tags = dict(tags or {})
    if error:
        all_tags[Tag.ERROR] = mlflow_client.truncate(
            error.strip(), mlflow_client.MAX_ERROR_TAG_LENGTH, tail=True
        )
    end = _End(state.run_id, status, inner, metrics or {}, all_tags, error, artifact_dirs)
    end.artifact_uri = state.artifact_uri  # known from the run: no read to find it
    try:
        state.budget.call(end.write, state.budget.store)
    except MirrorLagging:
        return end.ended
    return True


@dataclass
class _End:
    """What ending a child run writes, in the order that matters: the status first."""

    run_id: str
    status: str
    inner: Sequence[str]
    metrics: Mapping[str, float]
    tags: Mapping[str, str]
    error: str | None
    artifact_dirs: Sequence[Path]
    artifact_uri: str | None = None
    ended: bool = False

    def write(self, tracking_uri: str) -> None:
        client = mlflow_client.client_for(tracking_uri)
        for run_id in self.inner:
            mlflow_client.end_run(client, run_id, self.status)
        mlflow_client.log_batch(client, self.run_id, metrics=self.metrics, tags=self.tags)
        mlflow_client.end_run(client, self.run_id, self.status)
        self.ended = True
        if self.artifact_dirs and self.artifact_uri:
            from mlflow.store.artifact.artifact_repository_registry import (
                get_artifact_repository,
            )

            repo = get_artifact_repository(self.artifact_uri, tracking_uri=tracking_uri)
            for directory in self.artifact_dirs:
                mlflow_client.retry(repo.log_artifacts, str(directory), directory.name)
        else:
            for directory in self.artifact_dirs:
                mlflow_client.retry(
                    client.log_artifacts, self.run_id, str(directory), artifact_path=directory.name
                )
        if self.error:
            mlflow_client.retry(client.log_text, self.run_id, self.error, ERROR_ARTIFACT)


def end_elsewhere(budget: Budget, run_id: str, status: str, tags: Mapping[str, str]) -> None:
    """End a child run from a thread other than the one it is active in (never raises)."""
    end = _End(run_id, status, (), {}, tags, None, ())
    with contextlib.suppress(MirrorLagging):
        budget.call(end.write, budget.store)

"""The sweep side of the MLflow mirror: one parent run per sweep, one child run per job.

:class:`MlflowMirror` uses an explicit ``MlflowClient(tracking_uri)`` and
touches no global MLflow state. ``import ivory_hydra.mirror`` does not import
:mod:`mlflow` (it costs over a second, and Hydra imports plugins at start-up).
The job side, which makes the child run active inside the job, is
:mod:`ivory_hydra.active_run`.
"""

from __future__ import annotations

import getpass
import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.mlflow_store import (
    BEST_TAG_PREFIX,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
    PARENT_TAG,
    USER_TAG,
    T,
    chunks,
    client_for,
    error_code,
    finite,
    resolve_tracking_uri,
    retry,
    safe_key,
    safe_param_key,
    sqlite_path,
    stringify,
    truncate,
    unique_keys,
)
from ivory_hydra.redact import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.tracking import MlflowClient

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildSpec:
    """What a child run records when it is created."""

    run_name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


class MlflowMirror:
    """Mirror one sweep into MLflow: a parent run with one child run per job.

    Uses an explicit ``MlflowClient`` (no global MLflow state). Every store
    call is retried on SQLite's "database is locked".
    """

    def __init__(self, tracking_uri: str | None, experiment_name: str) -> None:
        self._tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self._client_obj: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._run_experiments: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"MlflowMirror({redact_url(self._tracking_uri)!r}, {self.experiment_name!r})"

    @property
    def tracking_uri(self) -> str:
        """The resolved tracking URI (absolute for local SQLite stores)."""
        return self._tracking_uri

    @property
    def _client(self) -> MlflowClient:
        if self._client_obj is None:
            path = sqlite_path(self._tracking_uri)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._client_obj = client_for(self._tracking_uri)
        return self._client_obj

    def _artifact_location(self) -> str | None:
        """Artifacts of a local SQLite store go next to the database file.

        For MLflow's default ``./mlflow.db`` that is its default ``./mlruns``;
        other stores (servers, PostgreSQL) decide themselves.
        """
        path = sqlite_path(self._tracking_uri)
        return None if path is None else (path.parent / "mlruns").as_uri()

    def experiment_id(self) -> str:
        """The experiment's id, creating the experiment (and the store) if needed."""
        if self._experiment_id is not None:
            return self._experiment_id
        from mlflow.exceptions import MlflowException

        client = self._client
        experiment = retry(client.get_experiment_by_name, self.experiment_name)
        if experiment is None:
            try:
                self._experiment_id = retry(
                    client.create_experiment,
                    self.experiment_name,
                    artifact_location=self._artifact_location(),
                )
                return self._experiment_id
            except MlflowException as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
                # Another process created it between our lookup and create.
                experiment = retry(client.get_experiment_by_name, self.experiment_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise RuntimeError(
                f"MLflow experiment {self.experiment_name!r} (id "
                f"{experiment.experiment_id}) is deleted in "
                f"{redact_url(self._tracking_uri)}. Restore it in the MLflow UI, "
                "delete it permanently (mlflow gc), or pick another experiment name."
            )
        self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def _experiment_of(self, run_id: str) -> str:
        if run_id not in self._run_experiments:
            run = retry(self._client.get_run, run_id)
            self._run_experiments[run_id] = run.info.experiment_id
        return self._run_experiments[run_id]

    def open_parent(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> str:
        """Create (or, with ``run_id``, resume) the sweep's top-level run.

        Creates the store and the experiment if missing. A resumed run is set
        back to RUNNING and gets ``tags``. If ``run_id`` no longer exists in
        the store, a new parent run is created (with a warning): use the
        returned id.
        """
        from mlflow.exceptions import MlflowException

        client = self._client
        experiment_id = self.experiment_id()
        batch_tags = self._tags(tags)
        if run_id is not None:
            try:
                run = retry(client.get_run, run_id)
            except MlflowException as exc:
                if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
                _log.warning(
                    "MLflow parent run %s not found in %s; creating a new one",
                    run_id,
                    redact_url(self._tracking_uri),
                )
            else:
                if run.info.lifecycle_stage == "deleted":
                    retry(client.restore_run, run_id)
                retry(client.update_run, run_id, status="RUNNING")
                self._log_batch(run_id, tags=batch_tags)
                self._run_experiments[run_id] = run.info.experiment_id
                return run_id
        run = retry(
            client.create_run,
            experiment_id,
            run_name=run_name,
            tags={USER_TAG: _user()},
        )
        self._run_experiments[run.info.run_id] = experiment_id
        self._log_batch(run.info.run_id, tags=batch_tags)
        return run.info.run_id

    def create_child(self, parent_run_id: str, spec: ChildSpec) -> str:
        """Create a nested RUNNING run under ``parent_run_id``; return its id.

        Param keys are made MLflow-safe (:func:`safe_param_key`), values are
        stringified and cut to MLflow's limits. One ``create_run`` and one
        ``log_batch`` (more only past 100 params or tags).
        """
        client = self._client
        experiment_id = self._experiment_of(parent_run_id)
        run = retry(
            client.create_run,
            experiment_id,
            run_name=spec.run_name,
            tags={PARENT_TAG: parent_run_id, USER_TAG: _user()},
        )
        run_id = run.info.run_id
        self._run_experiments[run_id] = experiment_id
        self._log_batch(run_id, params=self._params(spec.params), tags=self._tags(spec.tags))
        return run_id

    def finish_child(
        self,
        run_id: str,
        *,
        failed: bool,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        terminate: bool = True,
    ) -> None:
        """Log the job's score(s) and tags, then mark the run FINISHED or FAILED.

        Only finite metric values are logged. ``terminate=False`` leaves the
        status as the job set it.
        """
        self._log_batch(run_id, metrics=self._metrics(metrics), tags=self._tags(tags))
        if terminate:
            self._terminate(run_id, "FAILED" if failed else "FINISHED")

    def latest_metric(self, run_id: str, key: str) -> float | None:
        """The latest value of metric ``key`` in that run, or None.

        "Latest" is MLflow's: highest step, then newest timestamp.
        """
        run = retry(self._client.get_run, run_id)
        value = run.data.metrics.get(key)
        return None if value is None else float(value)

    def close_parent(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[Path] = (),
        failed: bool = False,
    ) -> None:
        """Record the sweep's outcome and end the parent run.

        Best params become tags ``ivory.best.<key>`` (tags may change on a
        resumed sweep; MLflow params may not). Metrics are logged as given,
        each artifact file (or directory) is uploaded, and the run ends
        FINISHED or FAILED.
        """
        client = self._client
        all_tags = {
            BEST_TAG_PREFIX + safe_param_key(k): stringify(v) for k, v in (params or {}).items()
        }
        all_tags.update(tags or {})
        self._log_batch(run_id, metrics=self._metrics(metrics), tags=self._tags(all_tags))
        for artifact in artifacts:
            path = Path(artifact)
            if path.is_dir():
                retry(client.log_artifacts, run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                retry(client.log_artifact, run_id, str(path))
            else:
                _log.warning("Artifact %s does not exist; not logged to MLflow", path)
        self._terminate(run_id, "FAILED" if failed else "FINISHED")

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Delete runs (MLflow keeps them as deleted until ``mlflow gc``)."""
        for run_id in run_ids:
            retry(self._client.delete_run, run_id)

    def find_children(self, parent_run_id: str) -> dict[str, str]:
        """``run_name -> run_id`` for the child runs of a parent.

        If several children share a name, the most recently started wins.
        """
        client = self._client
        experiment_id = self._experiment_of(parent_run_id)
        children: dict[str, str] = {}
        token: str | None = None
        while True:
            page = retry(
                client.search_runs,
                [experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
                max_results=1000,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            for run in page:
                children[run.info.run_name] = run.info.run_id
            token = page.token
            if not token:
                return children

    def ui_command(self) -> str:
        """A shell command that shows what was written (password redacted)."""
        uri = self._tracking_uri
        if uri.startswith(("http://", "https://")):
            return f"open {redact_url(uri)}"
        return f"mlflow ui --backend-store-uri {shlex.quote(redact_url(uri))}"

    # ---- store calls ----------------------------------------------------

    def _terminate(self, run_id: str, status: str) -> None:
        """End a run with ``status`` and the current time as its end time.

        Goes to the store directly: ``MlflowClient.set_terminated`` also reads
        the run back and prints a "View run" link for every run on HTTP
        servers, which would be one extra request and one line per job.
        """
        from mlflow.entities import RunStatus

        store = getattr(getattr(self._client, "_tracking_client", None), "store", None)
        update = getattr(store, "update_run_info", None)
        if update is None:  # another MLflow layout: use the public API
            retry(self._client.set_terminated, run_id, status)
            return
        retry(
            update,
            run_id,
            run_status=RunStatus.from_string(status),
            end_time=int(time.time() * 1000),
            run_name=None,
        )

    # ---- batching -------------------------------------------------------

    @staticmethod
    def _params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
        items = list((params or {}).items())
        keys = unique_keys([safe_param_key(k) for k, _ in items])
        return [
            (k, truncate(stringify(v), MAX_PARAM_VAL_LENGTH))
            for k, (_, v) in zip(keys, items, strict=True)
        ]

    @staticmethod
    def _tags(tags: Mapping[str, str] | None) -> list[tuple[str, str]]:
        return [
            (safe_key(k), truncate(stringify(v), MAX_TAG_VAL_LENGTH))
            for k, v in (tags or {}).items()
        ]

    @staticmethod
    def _metrics(metrics: Mapping[str, float] | None) -> list[tuple[str, float]]:
        out = []
        for key, value in (metrics or {}).items():
            number = finite(value)
            if number is None:
                _log.debug("Metric %s=%r is not a finite number; not logged", key, value)
            else:
                out.append((safe_key(key), number))
        return out

    def _log_batch(
        self,
        run_id: str,
        *,
        params: Sequence[tuple[str, str]] = (),
        tags: Sequence[tuple[str, str]] = (),
        metrics: Sequence[tuple[str, float]] = (),
    ) -> None:
        """``log_batch`` within MLflow's per-request limits (usually one call)."""
        from mlflow.entities import Metric, Param, RunTag

        if not (params or tags or metrics):
            return
        now = int(time.time() * 1000)
        param_chunks = list(chunks(params, MAX_PARAMS_TAGS_PER_BATCH))
        tag_chunks = list(chunks(tags, MAX_PARAMS_TAGS_PER_BATCH))
        metric_chunks = list(chunks(metrics, MAX_METRICS_PER_BATCH - 200))
        for i in range(max(len(param_chunks), len(tag_chunks), len(metric_chunks))):
            retry(
                self._client.log_batch,
                run_id,
                params=[Param(k, v) for k, v in _at(param_chunks, i)],
                tags=[RunTag(k, v) for k, v in _at(tag_chunks, i)],
                metrics=[Metric(k, v, now, 0) for k, v in _at(metric_chunks, i)],
                synchronous=True,
            )


def _at(chunks: list[Sequence[T]], i: int) -> Sequence[T]:
    return chunks[i] if i < len(chunks) else ()


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in containers without passwd entries
        return "unknown"

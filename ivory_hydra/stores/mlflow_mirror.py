"""The MLflow mirror of a sweep: one parent run, one nested child run per job.

MLflow mirrors what the Optuna storage holds and decides nothing. The engine
creates the parent and, before each batch, the batch's child runs; each job
ends its own child run (:mod:`ivory_hydra.job.active_run`). The mirror ends a
child run only for a job that could not reach the store, and marks KILLED the
runs of jobs whose process died.

:class:`MlflowMirror` uses an explicit ``MlflowClient(tracking_uri)`` and
touches no global MLflow state. ``import ivory_hydra.stores.mlflow_mirror``
does not import :mod:`mlflow`.
"""

from __future__ import annotations

import functools
import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ivory_hydra.core.outcomes import FAIL, Outcome
from ivory_hydra.core.redact import redact_url
from ivory_hydra.stores.format import Tag, score_metrics
from ivory_hydra.stores.mlflow_bound import DEFAULT_TIMEOUT, MirrorLagging, bounded
from ivory_hydra.stores.mlflow_client import (
    MAX_TAG_VAL_LENGTH,
    client_for,
    end_run,
    error_code,
    load_mlflow,
    log_batch,
    prepare_store,
    remember_run,
    resolve_tracking_uri,
    retry,
    safe_param_key,
    stringify,
    truncate,
)
from ivory_hydra.stores.mlflow_source import source_tags
from ivory_hydra.stores.sqlite_files import sqlite_file

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.tracking import MlflowClient

_log = logging.getLogger(__name__)


F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def run_status(outcome: Outcome) -> str:
    """The MLflow status of a run that ended with ``outcome``.

    >>> run_status(Outcome("complete", 1.0)), run_status(Outcome("fail"))
    ('FINISHED', 'FAILED')
    >>> run_status(Outcome("fail", error="KeyboardInterrupt"))
    'KILLED'
    """
    if outcome.killed:
        return "KILLED"
    return "FAILED" if outcome.state == FAIL else "FINISHED"


def outcome_tags(outcome: Outcome, number: int) -> dict[str, str]:
    """The tags that mirror a run's outcome and its trial.

    >>> outcome_tags(Outcome("fail", None, "boom"), 3)
    {'ivory.state': 'fail', 'ivory.trial_number': '3', 'ivory.reason': 'boom'}
    """
    tags = {Tag.STATE: outcome.state, Tag.TRIAL_NUMBER: str(number)}
    if outcome.reason:
        tags[Tag.REASON] = outcome.reason
    return tags


def best_effort(default: Any = None) -> Callable[[F], F]:
    """A mirror call that never stops the sweep, nor holds it longer than the mirror's
    ``timeout``: one skipped, failed or cut short returns ``default`` and marks the
    mirror behind (the closer or the next run brings it in line with the storage).
    The outage's one line is :mod:`~ivory_hydra.stores.mlflow_bound`'s."""

    def wrap(method: F) -> F:
        @functools.wraps(method)
        def call(self: MlflowMirror, *args: Any, **kwargs: Any) -> Any:
            try:
                return self.bounded(method, self, *args, **kwargs)
            except MirrorLagging as error:
                _log.debug("MLflow could not %s: %s", method.__name__.replace("_", " "), error)
                self.fell_behind()
                return default

        return call  # type: ignore[return-value]

    return wrap


@dataclass(frozen=True)
class ChildRun:
    """A child run as the MLflow store holds it."""

    run_id: str
    status: str
    number: int | None  # its trial's number (None: not a run of ours)
    metrics: Mapping[str, float] = field(default_factory=dict)
    repeat: int | None = None  # with repeats: which repeat of its configuration


def _child(run: Any) -> ChildRun:
    number = run.data.tags.get(Tag.TRIAL_NUMBER)
    repeat = run.data.tags.get(Tag.REPEAT)
    return ChildRun(
        run.info.run_id,
        str(run.info.status),
        int(number) if number and number.isdigit() else None,
        dict(run.data.metrics),
        int(repeat) if repeat and repeat.isdigit() else None,
    )


@dataclass(frozen=True)
class SweepRuns:
    """A sweep's runs as the MLflow store holds them."""

    children: list[ChildRun]  # nested under its parent run, at any depth
    strays: list[str]  # top-level runs of its study that killed workers left


#: MLflow 3's experiment tag that picks the UI's default view.
EXPERIMENT_KIND_TAG = Tag.EXPERIMENT_KIND


@dataclass(frozen=True)
class ChildSpec:
    """What a child run records when it is created."""

    run_name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


class MlflowMirror:
    """Mirror one sweep (or task) into MLflow; every store call retries SQLite's locks."""

    enabled = True

    def __init__(
        self,
        tracking_uri: str | None,
        experiment_name: str,
        script: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment_name = experiment_name
        self.timeout = timeout  # the most one call may take (seconds)
        self.source = source_tags(script)  # on every run it creates
        self._client_obj: MlflowClient | None = None
        self._experiment_id: str | None = None
        self.failures = 0  # calls skipped, failed or cut short: the store lags the storage
        self._ready = False  # MLflow imported and a local store made

    def __repr__(self) -> str:
        return f"MlflowMirror({redact_url(self.tracking_uri)!r}, {self.experiment_name!r})"

    @property
    def behind(self) -> bool:
        """Whether a call of this process was skipped, failed or cut short (MLflow lags)."""
        return self.failures > 0

    def fell_behind(self) -> None:
        """Count a call that was skipped, failed or cut short."""
        self.failures += 1

    def bounded(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` within the mirror's timeout; raises :class:`MirrorLagging`.

        MLflow's import and a new local store (a file copy) wait for no store:
        they are done first, outside the deadline.
        """
        if not self._ready:
            load_mlflow(self.tracking_uri)
            prepare_store(self.tracking_uri)
            self._ready = True
        return bounded(fn, *args, store=self.tracking_uri, seconds=self.timeout, **kwargs)

    @property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` of the tracking store (creating a local store if needed)."""
        if self._client_obj is None:
            prepare_store(self.tracking_uri)
            self._client_obj = client_for(self.tracking_uri)
        return self._client_obj

    def _artifact_location(self) -> str | None:
        """Artifacts of a local SQLite store go next to the database file.

        For MLflow's default ``./mlflow.db`` that is its default ``./mlruns``;
        other stores (servers, PostgreSQL) decide themselves.
        """
        path = sqlite_file(self.tracking_uri)
        return None if path is None else (path.parent / "mlruns").as_uri()

    def experiment_id(self) -> str:
        """The experiment's id, creating the experiment if needed."""
        if self._experiment_id is not None:
            return self._experiment_id
        from mlflow.exceptions import MlflowException

        client = self.client
        experiment = retry(client.get_experiment_by_name, self.experiment_name)
        if experiment is None:
            try:
                self._experiment_id = retry(
                    client.create_experiment,
                    self.experiment_name,
                    artifact_location=self._artifact_location(),
                    # mlflow ui then opens the experiment on its training runs
                    tags={EXPERIMENT_KIND_TAG: "custom_model_development"},
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
                f"{redact_url(self.tracking_uri)}. Restore it in the MLflow UI, "
                "delete it permanently (mlflow gc), or pick another experiment name."
            )
        self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def open_parent(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> str:
        """Create (or, with ``run_id``, resume) the sweep's top-level run; return its id.

        A resumed run is set back to RUNNING and gets ``tags``. If ``run_id``
        no longer exists in the store, a new parent run is created. Raises
        :class:`MirrorLagging` when MLflow does not answer within the timeout.
        """
        return self.bounded(self._open_parent, run_name, tags, run_id)

    def _open_parent(self, run_name: str, tags: Mapping[str, str], run_id: str | None) -> str:
        from mlflow.exceptions import MlflowException

        client = self.client
        if run_id is not None:
            try:
                run = retry(client.get_run, run_id)
            except MlflowException as exc:
                if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
                _log.warning(
                    "MLflow parent run %s not found in %s; creating a new one",
                    run_id,
                    redact_url(self.tracking_uri),
                )
            else:
                if run.info.lifecycle_stage == "deleted":
                    retry(client.restore_run, run_id)
                retry(client.update_run, run_id, status="RUNNING")
                log_batch(client, run_id, tags=tags)
                return run_id
        run = retry(
            client.create_run,
            self.experiment_id(),
            run_name=run_name,
            tags={**self.source, **tags},
        )
        return run.info.run_id

    @best_effort()
    def create_child(self, parent_run_id: str, spec: ChildSpec) -> str:
        """Create a nested RUNNING run under ``parent_run_id``; return its id.

        Its tags are set as it is created (a restart finds it by its trial
        number, however early a stop came), then one ``log_batch`` of params.
        """
        client = self.client
        tags = {k: truncate(stringify(v), MAX_TAG_VAL_LENGTH) for k, v in spec.tags.items()}
        run = retry(
            client.create_run,
            self.experiment_id(),
            run_name=spec.run_name,
            tags={**self.source, **tags, Tag.PARENT: parent_run_id},
        )
        log_batch(client, run.info.run_id, params=spec.params)
        remember_run(run)  # a job in this process makes it active without reading it
        return run.info.run_id

    @best_effort()
    def finish_child(
        self,
        run_id: str,
        status: str,
        *,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Log a run's score and tags, then end it with ``status`` (FINISHED, FAILED, KILLED)."""
        log_batch(self.client, run_id, metrics=metrics, tags=tags)
        end_run(self.client, run_id, status)

    @best_effort()
    def close_parent(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        artifacts: Sequence[Path] = (),
        status: str = "FINISHED",
    ) -> None:
        """Record the sweep's outcome and end the parent run.

        Best params become tags ``ivory.best.<key>`` (tags may change on a
        resumed sweep; MLflow params may not). Each artifact file or folder is
        uploaded, and the run ends with ``status``.
        """
        client = self.client
        all_tags = {
            Tag.BEST_PREFIX + safe_param_key(k): stringify(v) for k, v in (params or {}).items()
        }
        all_tags.update(tags or {})
        log_batch(client, run_id, metrics=metrics, tags=all_tags)
        for artifact in artifacts:
            path = Path(artifact)
            if path.is_dir():
                retry(client.log_artifacts, run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                retry(client.log_artifact, run_id, str(path))
            else:
                _log.warning("Artifact %s does not exist; not logged to MLflow", path)
        end_run(client, run_id, status)

    @best_effort()
    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Delete runs (MLflow keeps them as deleted until ``mlflow gc``)."""
        for run_id in run_ids:
            retry(self.client.delete_run, run_id)

    @best_effort()
    def reparent(self, run_id: str, parent_run_id: str) -> None:
        """Move a run under another parent run."""
        retry(self.client.set_tag, run_id, Tag.PARENT, parent_run_id)

    @best_effort()
    def settle(self, run_id: str, outcome: Outcome, number: int, names: Sequence[str]) -> None:
        """End a child run as its trial ended: the score, the outcome's tags, the status."""
        self.finish_child(
            run_id,
            run_status(outcome),
            metrics=score_metrics(outcome, names),
            tags=outcome_tags(outcome, number),
        )

    @best_effort()
    def sweep_runs(self, parent_run_id: str, study_name: str) -> SweepRuns | None:
        """A sweep's runs, read in one query (None when the store cannot be read): every
        run nested under its parent run (its children, and theirs: a configuration's
        repeats), and the study's other top-level runs that hold no run (each made by a
        worker killed before it could share it; another worker's parent stands)."""
        runs = self._study_runs(parent_run_id, study_name)
        below = {parent_run_id}
        for run in sorted(runs, key=lambda r: r.data.tags.get(Tag.REPEAT) is not None):
            if run.data.tags.get(Tag.PARENT) in below:
                below.add(run.info.run_id)
        holding = {r.data.tags.get(Tag.PARENT) for r in runs}
        strays = [
            r.info.run_id
            for r in runs
            if Tag.PARENT not in r.data.tags
            and r.info.run_id != parent_run_id
            and r.info.run_id not in holding
        ]
        children = [_child(run) for run in runs if run.info.run_id in below - {parent_run_id}]
        return SweepRuns(children, strays)

    def children(self, parent_run_id: str, study_name: str) -> list[ChildRun] | None:
        """Every run nested under a sweep's parent run (None when the store cannot be read)."""
        found = self.sweep_runs(parent_run_id, study_name)
        return None if found is None else found.children

    def delete_stray_parents(self, parent_run_id: str, study_name: str) -> None:
        """Delete the study's top-level runs that killed workers made and never shared."""
        found = self.sweep_runs(parent_run_id, study_name)
        if found is not None and found.strays:
            self.delete_runs(found.strays)

    def _study_runs(self, parent_run_id: str, study_name: str) -> list[Any]:
        """Every run tagged with the study's name, in the parent run's experiment."""
        experiment_id = retry(self.client.get_run, parent_run_id).info.experiment_id
        runs = []
        token = None
        while True:
            page = retry(
                self.client.search_runs,
                [experiment_id],
                filter_string=f"tags.`{Tag.STUDY_NAME}` = '{study_name}'",
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    @best_effort()
    def find_parent(self, study_name: str) -> str | None:
        """The newest top-level run of a study, if its id was never recorded in the study."""
        runs = retry(
            self.client.search_runs,
            [self.experiment_id()],
            filter_string=f"tags.`{Tag.STUDY_NAME}` = '{study_name}'",
            order_by=["attributes.start_time DESC"],
            max_results=50,
        )
        parents = [r for r in runs if Tag.PARENT not in r.data.tags]
        return parents[0].info.run_id if parents else None

    def latest_metric(self, run_id: str, key: str) -> float | None:
        """The latest value of metric ``key`` in a run (highest step, then newest), or None."""
        value = retry(self.client.get_run, run_id).data.metrics.get(key)
        return None if value is None else float(value)

    def ui_command(self) -> str:
        """A shell command that shows what was written (password redacted)."""
        uri = self.tracking_uri
        if uri.startswith(("http://", "https://")):
            return f"open {redact_url(uri)}"
        return f"mlflow ui --backend-store-uri {shlex.quote(redact_url(uri))}"


class NullMirror(MlflowMirror):
    """The mirror when MLflow is off: it writes nothing and knows no runs."""

    enabled = False

    def __init__(self) -> None:
        self.tracking_uri = ""
        self.experiment_name = ""
        self.timeout = DEFAULT_TIMEOUT
        self.failures = 0

    def __repr__(self) -> str:
        return "NullMirror()"

    def open_parent(self, run_name: str, tags: Mapping[str, str], run_id: str | None = None) -> Any:
        return None

    def create_child(self, parent_run_id: str, spec: ChildSpec) -> Any:
        return None

    def finish_child(self, run_id: str, status: str, **kwargs: Any) -> None:
        return None

    def settle(self, run_id: str, outcome: Outcome, number: int, names: Sequence[str]) -> None:
        return None

    def reparent(self, run_id: str, parent_run_id: str) -> None:
        return None

    def close_parent(self, run_id: str, **kwargs: Any) -> None:
        return None

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        return None

    def sweep_runs(self, parent_run_id: str, study_name: str) -> SweepRuns | None:
        return SweepRuns([], [])

    def find_parent(self, study_name: str) -> str | None:
        return None

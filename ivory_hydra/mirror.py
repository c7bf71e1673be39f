"""The MLflow mirror: one parent run per sweep, one nested child run per job.

Two halves:

* the sweep side, :class:`MlflowMirror`, uses an explicit
  ``MlflowClient(tracking_uri)`` and touches no global MLflow state;
* the job side, :func:`activate_child` / :func:`deactivate_child`, runs inside
  the job's own process (a loky worker, a Ray actor, a SLURM job) and makes the
  child run MLflow's *active* run, so that ``mlflow.log_metric`` in user code
  lands in it.

``import ivory_hydra.mirror`` does not import :mod:`mlflow` (it costs over a
second and Hydra imports plugins at startup); MLflow is imported on first use.

SQLite and concurrency: MLflow opens every SQLite session with
``PRAGMA busy_timeout = 20000``, so concurrent writers normally wait for each
other. SQLite may still answer ``database is locked`` at once when waiting
could deadlock, or after the 20 s when a writer is very slow; MLflow turns it
into an ``MlflowException`` (``TEMPORARILY_UNAVAILABLE``). Every call this
module makes is retried on that error with a bounded, jittered backoff.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import random
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.tracking import MlflowClient

__all__ = [
    "ChildSpec",
    "MlflowMirror",
    "activate_child",
    "deactivate_child",
    "redact_url",
    "resolve_tracking_uri",
    "safe_key",
    "safe_param_key",
    "truncate",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

#: MLflow's limits (``mlflow.utils.validation``).
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
#: MLflow 3's default tracking URI, relative to the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: How much of an error text goes into the ``ivory.error`` tag (the tail).
MAX_ERROR_TAG_LENGTH = 1000

PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"
BEST_TAG_PREFIX = "ivory.best."
ERROR_TAG = "ivory.error"

_RETRY_ATTEMPTS = 8
_RETRY_BASE_DELAY = 0.05
_RETRY_MAX_DELAY = 2.0
_RETRY_DEADLINE = 60.0  # seconds; each attempt may itself wait busy_timeout (20 s)
_LOCK_MARKERS = ("database is locked", "database table is locked", "sqlite_busy")


# --------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------


def truncate(text: str, limit: int, *, tail: bool = False) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with ``...``.

    ``tail=True`` keeps the end instead of the beginning (the useful part of a
    traceback).

    >>> truncate("abcdef", 10)
    'abcdef'
    >>> truncate("abcdefghij", 6)
    'abc...'
    >>> truncate("abcdefghij", 6, tail=True)
    '...hij'
    """
    if len(text) <= limit:
        return text
    if limit <= 3:
        return text[-limit:] if tail else text[:limit]
    return "..." + text[-(limit - 3) :] if tail else text[: limit - 3] + "..."


_BAD_KEY_CHARS = re.compile(r"[^\w./\- ]")


def safe_key(key: str) -> str:
    """Turn any string into a valid MLflow param, metric or tag key.

    MLflow keys may only hold alphanumerics, ``_ - . / `` and spaces, must not
    look like a non-normalised path and are at most 250 characters. Other
    characters become ``_``. (Colons are allowed by MLflow except on Windows
    servers; they are replaced for portability.)

    >>> safe_key("optim.lr")
    'optim.lr'
    >>> safe_key("hydra/launcher")
    'hydra/launcher'
    >>> safe_key("a=b[0]")
    'a_b_0_'
    >>> safe_key("/a//b/")
    'a/b'
    >>> safe_key("../x")
    '__/x'
    >>> safe_key("")
    '_'
    """
    key = _BAD_KEY_CHARS.sub("_", str(key))
    parts = [p for p in key.split("/") if p]
    parts = ["_" * len(p) if set(p) == {"."} else p for p in parts]
    key = "/".join(parts)[:MAX_KEY_LENGTH].rstrip("/")
    return key or "_"


def safe_param_key(key: str) -> str:
    """A Hydra override key as an MLflow param key.

    Drops Hydra's leading ``+``, ``++`` and ``~`` markers, then applies
    :func:`safe_key`.

    >>> safe_param_key("+db.port")
    'db.port'
    >>> safe_param_key("++trainer.max_epochs")
    'trainer.max_epochs'
    >>> safe_param_key("~callbacks")
    'callbacks'
    >>> safe_param_key("model")
    'model'
    """
    return safe_key(str(key).lstrip("+~"))


def _unique_keys(keys: Iterator[str] | Sequence[str]) -> list[str]:
    """Make keys unique by suffixing ``_1``, ``_2``... to later duplicates.

    >>> _unique_keys(["a", "b", "a", "a"])
    ['a', 'b', 'a_1', 'a_2']
    """
    seen: set[str] = set()
    out = []
    for key in keys:
        candidate, n = key, 0
        while candidate in seen:
            n += 1
            candidate = f"{key}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


def redact_url(url: str) -> str:
    """Hide the password of a URL; leave everything else as it is.

    >>> redact_url("postgresql://user:secret@host:5432/db")
    'postgresql://user:***@host:5432/db'
    >>> redact_url("mysql+pymysql://u:p@ss@db.example/x?ssl=1")
    'mysql+pymysql://u:***@db.example/x?ssl=1'
    >>> redact_url("postgresql://u:a/b@host/db")
    'postgresql://u:***@host/db'
    >>> redact_url("redis://:pw@localhost:6379")
    'redis://:***@localhost:6379'
    >>> redact_url("postgresql://user@host/db")
    'postgresql://user@host/db'
    >>> redact_url("sqlite:////tmp/mlflow.db")
    'sqlite:////tmp/mlflow.db'
    >>> redact_url("not a url")
    'not a url'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
        return url
    # The user info ends at the last "@" before the query: this also hides
    # passwords holding an unescaped "@" or "/" (over-redacting is harmless).
    at = rest.rfind("@", 0, _first(rest, "?#"))
    if at < 0:
        return url
    user, colon, _password = rest[:at].partition(":")
    if not colon or "/" in user:
        return url
    return f"{scheme}://{user}:***{rest[at:]}"


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def redact_text(text: str) -> str:
    """Hide the password of every URL inside ``text`` (a command line, a YAML file).

    >>> redact_text("train.py -m hydra.sweeper.storage=postgresql://u:pw@h/db lr=1")
    'train.py -m hydra.sweeper.storage=postgresql://u:***@h/db lr=1'
    >>> redact_text("- hydra.sweeper.storage='mysql://u:pw@h/db'")
    "- hydra.sweeper.storage='mysql://u:***@h/db'"
    """
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _first(text: str, chars: str) -> int:
    """Index of the first of ``chars`` in ``text`` (len(text) if none)."""
    found = [i for i in (text.find(c) for c in chars) if i >= 0]
    return min(found) if found else len(text)


def resolve_tracking_uri(uri: str | None, cwd: str | os.PathLike[str] | None = None) -> str:
    """The tracking URI as MLflow would resolve it, with local paths made absolute.

    ``None`` means ``$MLFLOW_TRACKING_URI`` if set, else MLflow 3's default
    ``sqlite:///mlflow.db``. A relative SQLite path or plain local path is made
    absolute against ``cwd`` (default: the working directory), so that jobs
    running in other directories (Hydra's ``chdir``) use the same store.

    >>> resolve_tracking_uri("sqlite:///runs/mlflow.db", cwd="/work")
    'sqlite:////work/runs/mlflow.db'
    >>> resolve_tracking_uri("sqlite:////abs/mlflow.db")
    'sqlite:////abs/mlflow.db'
    >>> resolve_tracking_uri("http://127.0.0.1:5000/")
    'http://127.0.0.1:5000'
    >>> resolve_tracking_uri("postgresql://u:p@db/mlflow")
    'postgresql://u:p@db/mlflow'
    >>> resolve_tracking_uri("./mlruns", cwd="/work")
    'file:///work/mlruns'
    """
    if uri is None:
        uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    base = Path(cwd) if cwd is not None else Path.cwd()
    if uri.startswith("sqlite:///"):
        path, q, query = uri[len("sqlite:///") :].partition("?")
        if path and path != ":memory:" and not path.startswith("/"):
            path = os.path.normpath(base / path)
            return f"sqlite:///{path}{q}{query}"
        return uri
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    if "://" not in uri and not uri.startswith(("file:", "databricks")):
        return Path(os.path.normpath(base / uri)).as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` URI, else None.

    >>> sqlite_path("sqlite:////tmp/x/mlflow.db?timeout=5")
    PosixPath('/tmp/x/mlflow.db')
    >>> sqlite_path("sqlite://") is None, sqlite_path("http://h") is None
    (True, True)
    """
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].partition("?")[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def _stringify(value: Any) -> str:
    """A param value as MLflow stores it.

    >>> _stringify(0.0001), _stringify(None), _stringify([1, 2])
    ('0.0001', 'None', '[1, 2]')
    """
    return value if isinstance(value, str) else str(value)


def _finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None.

    >>> _finite(1), _finite("0.5"), _finite(float("nan")), _finite("x"), _finite(None)
    (1.0, 0.5, None, None, None)
    """
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``.

    >>> [list(c) for c in _chunks([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------
# Retrying on SQLite lock errors
# --------------------------------------------------------------------------


def _is_locked_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is SQLite's "database is locked".

    >>> _is_locked_error(RuntimeError("(sqlite3.OperationalError) database is locked"))
    True
    >>> _is_locked_error(ValueError("nope"))
    False
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        text = str(current).lower()
        if any(marker in text for marker in _LOCK_MARKERS):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


_retrying = threading.local()
_quiet_installed = False


class _QuietRetriedLocks(logging.Filter):
    """Drop MLflow's ERROR log of a lock error that :func:`_retry` handles.

    MLflow logs every SQLAlchemy ``OperationalError`` with a traceback before
    raising it; for a call that is retried that log is noise. Lock errors
    outside :func:`_retry` (e.g. user code) are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(_retrying, "active", False):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        text = record.getMessage().lower()
        locked = any(m in text for m in _LOCK_MARKERS)
        return not (locked or (exc is not None and _is_locked_error(exc)))


def _install_quiet_filter() -> None:
    global _quiet_installed
    if not _quiet_installed:
        logging.getLogger("mlflow.store.db.utils").addFilter(_QuietRetriedLocks())
        _quiet_installed = True


def _retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn``, retrying on "database is locked" with a bounded backoff.

    At most ``_RETRY_ATTEMPTS`` calls, and no new attempt after
    ``_RETRY_DEADLINE`` seconds.
    """
    _install_quiet_filter()
    outer = getattr(_retrying, "active", False)
    _retrying.active = True
    try:
        return _retry_loop(fn, *args, **kwargs)
    finally:
        _retrying.active = outer


def _retry_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    deadline = time.monotonic() + _RETRY_DEADLINE
    for attempt in range(_RETRY_ATTEMPTS):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not _is_locked_error(exc):
                raise
            if attempt == _RETRY_ATTEMPTS - 1 or time.monotonic() > deadline:
                _log.error("MLflow store still locked after %d attempts", attempt + 1)
                raise
            delay = min(_RETRY_MAX_DELAY, _RETRY_BASE_DELAY * 2**attempt)
            delay *= random.uniform(0.5, 1.0)
            _log.debug(
                "MLflow store locked in %s, retry %d in %.2fs",
                getattr(fn, "__name__", fn),
                attempt + 1,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _client(tracking_uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


# --------------------------------------------------------------------------
# Sweep side
# --------------------------------------------------------------------------


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
            self._client_obj = _client(self._tracking_uri)
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
        experiment = _retry(client.get_experiment_by_name, self.experiment_name)
        if experiment is None:
            try:
                self._experiment_id = _retry(
                    client.create_experiment,
                    self.experiment_name,
                    artifact_location=self._artifact_location(),
                )
                return self._experiment_id
            except MlflowException as exc:
                if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
                # Another process created it between our lookup and create.
                experiment = _retry(client.get_experiment_by_name, self.experiment_name)
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
            run = _retry(self._client.get_run, run_id)
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
                run = _retry(client.get_run, run_id)
            except MlflowException as exc:
                if _error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
                _log.warning(
                    "MLflow parent run %s not found in %s; creating a new one",
                    run_id,
                    redact_url(self._tracking_uri),
                )
            else:
                if run.info.lifecycle_stage == "deleted":
                    _retry(client.restore_run, run_id)
                _retry(client.update_run, run_id, status="RUNNING")
                self._log_batch(run_id, tags=batch_tags)
                self._run_experiments[run_id] = run.info.experiment_id
                return run_id
        run = _retry(
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
        run = _retry(
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
    ) -> None:
        """Log the job's score(s) and tags, then mark the run FINISHED or FAILED.

        Only finite metric values are logged.
        """
        self._log_batch(run_id, metrics=self._metrics(metrics), tags=self._tags(tags))
        self._terminate(run_id, "FAILED" if failed else "FINISHED")

    def latest_metric(self, run_id: str, key: str) -> float | None:
        """The latest value of metric ``key`` in that run, or None.

        "Latest" is MLflow's: highest step, then newest timestamp.
        """
        run = _retry(self._client.get_run, run_id)
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
            BEST_TAG_PREFIX + safe_param_key(k): _stringify(v) for k, v in (params or {}).items()
        }
        all_tags.update(tags or {})
        self._log_batch(run_id, metrics=self._metrics(metrics), tags=self._tags(all_tags))
        for artifact in artifacts:
            path = Path(artifact)
            if path.is_dir():
                _retry(client.log_artifacts, run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                _retry(client.log_artifact, run_id, str(path))
            else:
                _log.warning("Artifact %s does not exist; not logged to MLflow", path)
        self._terminate(run_id, "FAILED" if failed else "FINISHED")

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Delete runs (MLflow keeps them as deleted until ``mlflow gc``)."""
        for run_id in run_ids:
            _retry(self._client.delete_run, run_id)

    def find_children(self, parent_run_id: str) -> dict[str, str]:
        """``run_name -> run_id`` for the child runs of a parent.

        If several children share a name, the most recently started wins.
        """
        client = self._client
        experiment_id = self._experiment_of(parent_run_id)
        children: dict[str, str] = {}
        token: str | None = None
        while True:
            page = _retry(
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
            _retry(self._client.set_terminated, run_id, status)
            return
        _retry(
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
        keys = _unique_keys([safe_param_key(k) for k, _ in items])
        return [
            (k, truncate(_stringify(v), MAX_PARAM_VAL_LENGTH))
            for k, (_, v) in zip(keys, items, strict=True)
        ]

    @staticmethod
    def _tags(tags: Mapping[str, str] | None) -> list[tuple[str, str]]:
        return [
            (safe_key(k), truncate(_stringify(v), MAX_TAG_VAL_LENGTH))
            for k, v in (tags or {}).items()
        ]

    @staticmethod
    def _metrics(metrics: Mapping[str, float] | None) -> list[tuple[str, float]]:
        out = []
        for key, value in (metrics or {}).items():
            number = _finite(value)
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
        param_chunks = list(_chunks(params, MAX_PARAMS_TAGS_PER_BATCH))
        tag_chunks = list(_chunks(tags, MAX_PARAMS_TAGS_PER_BATCH))
        metric_chunks = list(_chunks(metrics, MAX_METRICS_PER_BATCH - 200))
        for i in range(max(len(param_chunks), len(tag_chunks), len(metric_chunks))):
            _retry(
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


# --------------------------------------------------------------------------
# Job side
# --------------------------------------------------------------------------

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
        _retry(mlflow.start_run, run_id=run_id)
    except MlflowException as exc:
        if _is_locked_error(exc) or _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise
        # e.g. a job before this one in this worker called mlflow.set_experiment
        # with another experiment: start_run refuses runs of other experiments.
        run = _retry(_client(tracking_uri).get_run, run_id)
        mlflow.set_experiment(experiment_id=run.info.experiment_id)
        _retry(mlflow.start_run, run_id=run_id)
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
            if not _is_locked_error(exc):
                raise
            client = mlflow.MlflowClient()
        _retry(client.set_terminated, run.info.run_id, status)


def deactivate_child(
    *,
    failed: bool,
    error: str | None = None,
    artifact_dirs: Sequence[Path] = (),
) -> None:
    """Upload the job's artifacts, record a failure, end the active child run.

    Each directory in ``artifact_dirs`` is logged under its own name (the
    job's ``.hydra`` folder becomes artifact path ``.hydra``). On failure the
    tail of ``error`` becomes the tag ``ivory.error`` and the full text the
    artifact ``error.txt``. Runs the user left open inside the child are ended
    too. Never raises: problems are logged as warnings.
    """
    state = getattr(_job_state, "current", None)
    _job_state.current = None
    if state is None:
        _log.warning("deactivate_child() without activate_child(); nothing to end")
        return
    tracking_uri, run_id = state
    status = "FAILED" if failed else "FINISHED"
    try:
        client = _client(tracking_uri)
    except Exception as exc:
        _log.warning("MLflow client for %s failed: %s", redact_url(tracking_uri), exc)
        return
    for directory in artifact_dirs:
        path = Path(directory)
        try:
            if path.is_dir():
                _retry(client.log_artifacts, run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                _retry(client.log_artifact, run_id, str(path))
        except Exception as exc:
            _log.warning("Could not log artifacts %s to MLflow run %s: %s", path, run_id, exc)
    if failed and error:
        try:
            _retry(
                client.set_tag,
                run_id,
                ERROR_TAG,
                truncate(error.strip(), MAX_ERROR_TAG_LENGTH, tail=True),
            )
            _retry(client.log_text, run_id, error, "error.txt")
        except Exception as exc:
            _log.warning("Could not record the error in MLflow run %s: %s", run_id, exc)
    _end_child(client, run_id, status)


def _end_child(client: MlflowClient, run_id: str, status: str) -> None:
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
            _retry(client.set_terminated, run_id, status)
    except Exception as exc:
        _log.warning("Could not end MLflow run %s as %s: %s", run_id, status, exc)

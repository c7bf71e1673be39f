"""Talking to an MLflow tracking store safely: limits, keys, URIs, lock retries,
reachability, and fresh local stores.

``import ivory_hydra.stores.mlflow_client`` does not import :mod:`mlflow`.

SQLite and concurrency: MLflow opens every SQLite session with
``PRAGMA busy_timeout = 20000``, so concurrent writers normally wait for each
other. SQLite may still answer ``database is locked`` at once when waiting
could deadlock, or after the 20 s when a writer is very slow; MLflow turns it
into an ``MlflowException`` (``TEMPORARILY_UNAVAILABLE``). Every call made
through :func:`retry` is retried on that error with a bounded, jittered backoff
(:mod:`ivory_hydra.stores.retry`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ivory_hydra import _compat
from ivory_hydra.stores import retry as _policy
from ivory_hydra.stores.retry import is_locked_error
from ivory_hydra.stores.sqlite_files import cache_folder, copy_of_pristine, sqlite_file

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.tracking import MlflowClient


T = TypeVar("T")

#: MLflow's limits (``mlflow.utils.validation``).
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
#: MLflow 3's default tracking URI, relative to the working directory.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Tracking URIs of stores that MLflow keeps in a database (its SQLAlchemy store).
DATABASE_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")
#: How much of an error text goes into the ``ivory.error`` tag (the tail).
MAX_ERROR_TAG_LENGTH = 1000

__all__ = ["is_locked_error", "retry"]  # is_locked_error lives in stores/retry.py


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


def unique_keys(keys: Iterator[str] | Sequence[str]) -> list[str]:
    """Make keys unique by suffixing ``_1``, ``_2``... to later duplicates.

    >>> unique_keys(["a", "b", "a", "a"])
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


def stringify(value: Any) -> str:
    """A param value as MLflow stores it.

    >>> stringify(0.0001), stringify(None), stringify([1, 2])
    ('0.0001', 'None', '[1, 2]')
    """
    return value if isinstance(value, str) else str(value)


def finite(value: Any) -> float | None:
    """``float(value)`` when it is a finite number, else None.

    >>> finite(1), finite("0.5"), finite(float("nan")), finite("x"), finite(None)
    (1.0, 0.5, None, None, None)
    """
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``.

    >>> [list(c) for c in chunks([1, 2, 3, 4, 5], 2)]
    [[1, 2], [3, 4], [5]]
    """
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------
# Retrying on SQLite lock errors (and lost connections): stores/retry.py
# --------------------------------------------------------------------------


def retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` under the stores' retry policy (:mod:`ivory_hydra.stores.retry`).

    "database is locked" is retried with a bounded, jittered back-off; a lost
    connection to a database behind the tracking store is waited out for the
    process's ``storage_retry`` seconds. Any other error raises at once.
    """
    return _policy.call(fn, *args, what="the MLflow tracking store", **kwargs)


def load_mlflow(tracking_uri: str | None = None) -> None:
    """Import MLflow's client, and the store module that ``tracking_uri`` needs (seconds,
    once per process): no store is waited for, so callers do it before a deadline starts.

    MLflow prints "View run ... at: <url>" lines for tracking servers, URL
    password included; ivory-hydra prints its own, redacted, hints instead.
    """
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import mlflow.tracking  # noqa: F401

    if tracking_uri is not None and tracking_uri.startswith(DATABASE_SCHEMES):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def client_for(tracking_uri: str) -> MlflowClient:
    """An ``MlflowClient`` on ``tracking_uri`` that prints no run links (it opens the store)."""
    load_mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if tracking_uri not in _tuned and sqlite_file(tracking_uri) is not None:
        _tuned.add(tracking_uri)
        tune_sqlite(_compat.sqlalchemy_store_engine(client))
    return client


#: The SQLite stores whose engine in this process has :func:`tune_sqlite`'s listener.
_tuned: set[str] = set()


def tune_sqlite(engine: Any) -> None:
    """Drop an fsync per write on an SQLite store in WAL mode (the stores ivory-hydra makes).

    In WAL mode, ``synchronous=NORMAL`` keeps the store whole when a process
    dies; only a power cut may take its last transactions back. A store in
    another journal mode is left as MLflow opens it.
    """
    if engine is None:
        return
    from sqlalchemy import event

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # later connections get it


def error_code(exc: BaseException) -> str | None:
    """The ``error_code`` of an ``MlflowException`` (None for other errors)."""
    return getattr(exc, "error_code", None)


# --------------------------------------------------------------------------
# Reachability and fresh stores
# --------------------------------------------------------------------------


def check_tracking_uri(uri: str) -> None:
    """Raise :class:`StoreError` if the tracking store cannot be reached; write nothing.

    A local SQLite store must be a database if it exists; if it does not, the
    cache folder where :func:`prepare_store` keeps its pristine store must be
    usable. See :mod:`ivory_hydra.stores.reachability`.
    """
    from ivory_hydra.core.redact import redact_text, redact_url
    from ivory_hydra.errors import StoreError
    from ivory_hydra.stores.reachability import (
        database_problem,
        folder_problem,
        server_problem,
        sqlite_problem,
    )

    path = sqlite_file(uri)
    if path is not None:
        problem = folder_problem(path) or (
            sqlite_problem(path) if path.exists() else cache_problem()
        )
    elif uri.startswith(("http://", "https://")):
        problem = server_problem(uri)
    elif uri.startswith(("postgresql", "mysql", "mssql")):
        problem = database_problem(uri)
    else:
        problem = None
    if problem is not None:
        raise StoreError(
            f"cannot reach this MLflow tracking store ({redact_url(uri)}): {redact_text(problem)}"
        )


def _mlflow_version() -> str:
    from importlib import metadata

    for distribution in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    import mlflow

    return str(mlflow.__version__)


def pristine_path() -> Path:
    """The pristine MLflow store of the installed MLflow version (made on first need)."""
    return cache_folder() / f"mlflow-{_mlflow_version()}.db"


def cache_problem() -> str | None:
    """Why a new local MLflow store cannot be made (None if it can); writes nothing.

    A new store is a copy of a pristine one that is built once in the cache
    folder: that folder must be writable, unless the pristine store is there.
    """
    from ivory_hydra.stores.reachability import folder_problem

    try:
        pristine = pristine_path()
    except RuntimeError as error:  # no HOME, and no home in the password database
        return f"no cache folder for a new MLflow store ({error}): set XDG_CACHE_HOME"
    if pristine.is_file() and os.access(pristine, os.R_OK):
        return None
    if folder_problem(pristine) is None:
        return None
    return (
        f"the cache folder {pristine.parent} cannot be written, and a new MLflow store is a "
        "copy of one made there once: set XDG_CACHE_HOME to a writable folder, or make "
        f"HOME ({Path.home()}) writable"
    )


def prepare_store(uri: str) -> None:
    """Make sure a local SQLite tracking store exists, created in milliseconds.

    MLflow builds a new SQLite store by running every schema migration (about
    4 s), and two processes doing it at once break each other. Here a fresh
    store is a copy of a pristine one, built once per MLflow version in the
    user's cache folder, and linked into place so that one copy wins.
    """
    path = sqlite_file(uri)
    if path is None or path.exists():
        return

    def build(tmp: Path) -> None:
        client_for(f"sqlite:///{tmp}").search_experiments()

    def adjust(tmp: Path) -> None:
        import sqlite3

        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            # WAL: readers (mlflow ui) work beside the sweep, and a write costs one fsync
            db.execute("PRAGMA journal_mode=WAL")
            # MLflow points the Default experiment at ./mlruns of the process that
            # made the store: make it the new store's folder, not the cache.
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                (str(path.parent / "mlruns" / "0"),),
            )

    copy_of_pristine(path, pristine_path(), build, adjust)


# --------------------------------------------------------------------------
# Batched writes
# --------------------------------------------------------------------------


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> None:
    """Log params, tags and metrics in as few calls as MLflow's limits allow (usually one).

    Keys are made MLflow-safe, values stringified and cut to MLflow's limits;
    metrics that are not finite numbers are left out.
    """
    from mlflow.entities import Metric, Param, RunTag

    param_items = list((params or {}).items())
    param_keys = unique_keys([safe_param_key(k) for k, _ in param_items])
    param_list = [
        Param(k, truncate(stringify(v), MAX_PARAM_VAL_LENGTH))
        for k, (_, v) in zip(param_keys, param_items, strict=True)
    ]
    tag_list = [
        RunTag(safe_key(k), truncate(stringify(v), MAX_TAG_VAL_LENGTH))
        for k, v in (tags or {}).items()
    ]
    now = int(time.time() * 1000)
    metric_list = []
    for key, value in (metrics or {}).items():
        number = finite(value)
        if number is not None:
            metric_list.append(Metric(safe_key(key), number, now, 0))
    groups = [
        list(chunks(param_list, MAX_PARAMS_TAGS_PER_BATCH)),
        list(chunks(tag_list, MAX_PARAMS_TAGS_PER_BATCH)),
        list(chunks(metric_list, MAX_METRICS_PER_BATCH - 200)),
    ]
    for i in range(max(len(g) for g in groups)):
        p, t, m = (g[i] if i < len(g) else () for g in groups)
        retry(
            client.log_batch,
            run_id,
            params=list(p),
            tags=list(t),
            metrics=list(m),
            synchronous=True,
        )


_created: dict[str, Any] = {}  # runs made by this process that no job made active yet


def remember_run(run: Any) -> None:
    """Keep a run this process created (a ``mlflow.entities.Run``) for a job of this
    process to make active without reading it back."""
    _created[run.info.run_id] = run


def created_run(run_id: str) -> Any:
    """The run ``run_id`` as this process created it (once), else None."""
    return _created.pop(run_id, None)


def end_run(client: MlflowClient, run_id: str, status: str) -> None:
    """Mark a run FINISHED, FAILED or KILLED, ending now."""
    retry(client.set_terminated, run_id, status)

"""Optuna storages: where a sweep's truth lives.

``storage_url`` turns what a user gives into a URL (an SQLite file by
default, any SQLAlchemy URL, or a journal file); ``check_storage`` tells
whether it can be reached without writing anything; ``open_storage`` opens it
once per process. A fresh local SQLite file is created race-free, so two
processes that start on the same new folder both work.

A database storage is a :class:`~ivory_hydra.stores.resilient.ResilientRDBStorage`
(an ``RDBStorage`` that waits out a lost connection for the process-wide
``storage_retry`` bound, :func:`ivory_hydra.stores.retry.set_storage_retry`);
a journal file is read and written through
:class:`~ivory_hydra.stores.journal_files.RepairingJournalFileBackend` (a
record torn by a crash is cut away before anything is appended).
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.redact import redact_text, redact_url
from ivory_hydra.errors import StoreError
from ivory_hydra.stores.proxy_urls import is_grpc
from ivory_hydra.stores.sqlite_files import cache_folder, copy_of_pristine, create_once, sqlite_file

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

DEFAULT_FILENAME = "optuna.db"
SQLITE_PREFIX = "sqlite:///"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def storage_url(storage: str | None, directory: str | Path = ".") -> str:
    """Resolve what the user gave as ``storage`` into a URL or a journal path.

    None means the embedded default, an SQLite file in ``directory``. A bare
    path ending in ``.db``/``.sqlite`` is an SQLite file; any other bare path
    is an Optuna journal file.

    >>> storage_url(None, "/tmp/x")
    'sqlite:////tmp/x/optuna.db'
    >>> storage_url("/tmp/runs.db")
    'sqlite:////tmp/runs.db'
    >>> storage_url("postgresql://u:p@127.0.0.1/db")
    'postgresql://u:p@127.0.0.1/db'
    >>> storage_url("/tmp/journal.log")
    '/tmp/journal.log'
    """
    if storage is None or storage == "":
        return f"{SQLITE_PREFIX}{(Path(directory) / DEFAULT_FILENAME).absolute()}"
    if "://" in storage:
        return storage
    path = Path(directory, storage).absolute()
    if path.suffix in SQLITE_SUFFIXES:
        return f"{SQLITE_PREFIX}{path}"
    return str(path)


def is_journal(url: str) -> bool:
    """True when ``url`` names an Optuna journal file rather than a database.

    >>> is_journal("/tmp/journal.log"), is_journal("sqlite:///x.db")
    (True, False)
    """
    return "://" not in url


def dashboard_command(url: str) -> str:
    """The command that opens optuna-dashboard on a storage (password hidden).

    >>> dashboard_command("sqlite:////tmp/optuna.db")
    'optuna-dashboard sqlite:////tmp/optuna.db'

    optuna-dashboard reads the database, not the proxy:

    >>> dashboard_command("grpc://127.0.0.1:50051")
    'optuna-dashboard STORAGE_URL (the database behind the proxy at grpc://127.0.0.1:50051)'
    """
    if is_grpc(url):
        return f"optuna-dashboard STORAGE_URL (the database behind the proxy at {url})"
    return f"optuna-dashboard {redact_url(url)}"


def _unusable(url: str, error: BaseException) -> StoreError:
    message = redact_text(str(error)).strip().splitlines()
    reason = message[0] if message else ""
    return StoreError(
        f"cannot open this Optuna storage ({redact_url(url)}): {type(error).__name__}: {reason}"
    )


def check_storage(url: str) -> None:
    """Raise :class:`StoreError` if the storage cannot be reached; write nothing.

    An existing SQLite file that is not a database is named with SQLite's own
    words. See :mod:`ivory_hydra.stores.reachability`.
    """
    from ivory_hydra.stores.reachability import database_problem, folder_problem, sqlite_problem

    local = Path(url) if is_journal(url) else sqlite_file(url)
    if is_grpc(url):
        from ivory_hydra.stores.reachability import CONNECT_TIMEOUT
        from ivory_hydra.stores.remote_records import proxy_problem

        problem = proxy_problem(url, CONNECT_TIMEOUT)
    elif local is None:
        problem = database_problem(url)
    elif not is_journal(url) and local.exists():
        problem = sqlite_problem(local)
    else:
        problem = folder_problem(local)
    if problem is not None:
        raise StoreError(
            f"cannot open this Optuna storage ({redact_url(url)}): {redact_text(problem)}"
        )


def _connect_args(url: str) -> dict[str, Any]:
    from ivory_hydra.stores.reachability import CONNECT_TIMEOUT

    return {"connect_timeout": CONNECT_TIMEOUT} if url.startswith(("postgresql", "mysql")) else {}


#: The URL each storage that :func:`open_storage` returned was opened with.
_URLS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def open_storage(url: str) -> BaseStorage:
    """Open (and cache per process) the Optuna storage behind ``url``.

    A storage that cannot be opened raises :class:`StoreError` with the
    reason, and with any password in the URL hidden; a database server that
    stays unreachable for ``storage_retry`` seconds raises
    :class:`~ivory_hydra.errors.StorageUnavailableError`.
    """
    return _open_cached(url)


@functools.lru_cache(maxsize=8)
def _open_cached(url: str) -> BaseStorage:
    from ivory_hydra.errors import StorageUnavailableError

    try:
        storage = _open_storage(url)
    except StorageUnavailableError:
        raise
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds
        raise _unusable(url, error) from None
    _URLS[storage] = url
    return storage


def url_of(storage: Any) -> str:
    """The URL that :func:`open_storage` opened ``storage`` with.

    Optuna's own wrapper (``optuna.load_study`` wraps an ``RDBStorage`` in a
    ``_CachedStorage``) is seen through. Raises ``KeyError`` for a storage
    opened otherwise.
    """
    url = _URLS.get(storage)
    if url is None:
        from ivory_hydra._compat import cached_storage_backend

        backend = cached_storage_backend(storage)
        url = None if backend is None else _URLS.get(backend)
    if url is not None:
        return url
    raise KeyError(f"{type(storage).__name__} was not opened by ivory_hydra's open_storage")


def _open_storage(url: str) -> BaseStorage:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if is_journal(url):
        from optuna.storages.journal import JournalStorage

        from ivory_hydra.stores.journal_files import RepairingJournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(RepairingJournalFileBackend(url))
    if is_grpc(url):
        return _open_proxy(url)
    path = sqlite_file(url)
    if path is None:
        return _open_server(url)
    from ivory_hydra.stores.resilient import ResilientRDBStorage

    try:
        copy_of_pristine(path, _pristine_sqlite(), _build_sqlite)
    except (OSError, RuntimeError):  # no usable cache folder (or no home): build in place
        create_once(path, _build_sqlite)
    storage = ResilientRDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": 60}}, skip_table_creation=True
    )
    from sqlalchemy import event

    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()  # later connections get the pragmas
    return storage


#: SQLAlchemy's pool of a database-server storage in this process, when not its
#: defaults. A worker keeps its defaults: a pool opens connections only as threads
#: need them at once (two: the main thread and the heartbeat's), and a smaller
#: pool_size only made it open and close the second one again and again.
_POOL: dict[str, int] = {}


def set_pool_size(size: int) -> None:
    """Keep ``size`` connections (at most 4 more) to a database server in this process (a
    proxy's threads each need one); call it before the storage is opened."""
    _POOL.update(pool_size=size, max_overflow=4)


def _open_server(url: str) -> BaseStorage:
    """An RDB storage on a database server.

    Processes that meet a fresh database at the same moment race to create
    Optuna's tables; the losers see a duplicate-key or already-exists error
    and simply open what the winner made. A server that is down is waited
    for, as a lost connection is.
    """
    import random
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    from ivory_hydra.stores import retry
    from ivory_hydra.stores.resilient import ResilientRDBStorage

    for attempt in range(5):
        try:
            return retry.call(
                ResilientRDBStorage,
                url,
                engine_kwargs={
                    "connect_args": _connect_args(url),
                    "pool_pre_ping": True,
                    **_POOL,
                },
                what=redact_url(url),
                unavailable=retry.storage_unavailable(url),
            )
        except (IntegrityError, ProgrammingError):
            if attempt == 4:
                raise
            time.sleep(random.uniform(0.1, 0.5))
    raise AssertionError("unreachable")


def _open_proxy(url: str) -> BaseStorage:
    """Optuna's client of a gRPC storage proxy (a restart of the proxy is waited out);
    the proxy must answer within seconds."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    from ivory_hydra.stores.reachability import CONNECT_TIMEOUT
    from ivory_hydra.stores.resilient import ResilientGrpcStorageProxy

    with warnings.catch_warnings():  # experimental since Optuna 4.2: said once, in the docs
        warnings.simplefilter("ignore", ExperimentalWarning)
        storage = ResilientGrpcStorageProxy(url)
    storage.wait_server_ready(timeout=CONNECT_TIMEOUT)
    return storage


def _pristine_sqlite() -> Path:
    """The pristine SQLite storage of the installed Optuna and of ivory-hydra's tables."""
    from importlib import metadata

    from ivory_hydra.stores.tables import schema_digest

    try:
        version = metadata.version("optuna")
    except metadata.PackageNotFoundError:
        import optuna

        version = optuna.__version__
    return cache_folder() / f"optuna-{version}-{schema_digest()}.db"


def _build_sqlite(path: Path) -> None:
    """A new Optuna SQLite file with every table, built where no one else looks."""
    import optuna

    from ivory_hydra.stores.tables import create_tables

    storage = optuna.storages.RDBStorage(f"{SQLITE_PREFIX}{path}")
    create_tables(storage.engine)
    storage.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (optuna-dashboard) work beside the sweep, and
    # synchronous=NORMAL drops an fsync per transaction, which is most of the
    # cost of a write.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


#: How to get optuna-dashboard, an optional extra.
DASHBOARD_INSTALL = "pip install 'ivory-hydra[ui]'"


def dashboard_hint(url: str) -> str:
    """The optuna-dashboard command, after the install hint when it is not importable.

    >>> dashboard_hint("sqlite:////tmp/optuna.db").endswith("optuna-dashboard sqlite:////tmp/optuna.db")
    True
    """
    import importlib.util

    try:
        found = importlib.util.find_spec("optuna_dashboard") is not None
    except (ImportError, ValueError):
        found = False
    command = dashboard_command(url)
    return command if found else f"{DASHBOARD_INSTALL}, then {command}"

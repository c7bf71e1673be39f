"""An Optuna storage read without writing anything to it (for the plan preview).

A local store (an SQLite file with its write-ahead log, or a journal file) is
copied into a temporary folder and the copy is opened: SQLite writes even
when it only reads (its ``-wal`` and ``-shm`` files, a checkpoint on close),
and the copy takes all of that. A database server is read through a
connection that creates no table, a gRPC proxy through Optuna's client
(which reads only what it is asked for). A store that does not exist is not made.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ivory_hydra.stores.optuna_storage import is_grpc, is_journal
from ivory_hydra.stores.sqlite_files import sqlite_file

if TYPE_CHECKING:
    from optuna.storages import BaseStorage


@contextmanager
def read_only(url: str) -> Iterator[BaseStorage | None]:
    """The storage behind ``url``, opened so that nothing is written to it; None
    when it holds nothing yet (no file, an empty file, a database without Optuna's
    tables)."""
    if is_grpc(url):  # the proxy only reads when asked to read
        from ivory_hydra.stores.optuna_storage import open_storage

        yield open_storage(url)
        return
    local = Path(url) if is_journal(url) else sqlite_file(url)
    if local is None:
        with _opened(url) as storage:
            yield storage
        return
    if not local.is_file() or local.stat().st_size == 0:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ivory-preview-") as folder:
        copy = Path(folder) / local.name
        shutil.copyfile(local, copy)
        if is_journal(url):
            from optuna.storages.journal import JournalStorage

            from ivory_hydra.stores.journal_files import RepairingJournalFileBackend

            yield JournalStorage(RepairingJournalFileBackend(str(copy)))
            return
        wal = local.with_name(local.name + "-wal")
        if wal.is_file():  # committed transactions not yet checkpointed into the file
            shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        with _opened(f"sqlite:///{copy}") as storage:
            yield storage


@contextmanager
def _opened(url: str) -> Iterator[BaseStorage | None]:
    """A database's storage, through connections that create no table; None when
    it has no Optuna tables yet."""
    import optuna
    import sqlalchemy

    from ivory_hydra.stores.optuna_storage import _connect_args

    engine = sqlalchemy.create_engine(url, connect_args=_connect_args(url))
    try:
        has_tables = sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()
    if not has_tables:
        yield None
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": _connect_args(url)}, skip_table_creation=True
    )
    try:
        yield storage
    finally:
        storage.engine.dispose()

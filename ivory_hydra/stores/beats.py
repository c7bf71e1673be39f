"""The beats board: liveness records, each overwritten in place, out of the journal.

Every running job (and every sweeper and worker) rewrites its liveness record
every ``heartbeat_interval`` seconds. Kept in an Optuna journal file (as a
trial system attribute, or a ledger record) every beat would be one more
record that every opener of the sweep replays: 1,000 one-hour jobs at 10 s
make 360,000 records. The board keeps the last record of each key only:

* database storages: the table ``ivory_hydra_beats`` of the same database,
  one row per key, overwritten (waits out a lost connection, as the ledger);
* a gRPC storage proxy: that table of the proxy's database, through the
  proxy's records service (:class:`RemoteBeats`);
* Optuna's bare gRPC proxy: system attributes of a bookkeeping study
  (:class:`StudyBeats`);
* journal files: a folder beside the journal, ``<journal>.beats/``, one small
  file per key (its name the key, escaped), replaced atomically (written to a
  temporary file, then ``os.replace``), so a reader sees the old record or the
  new one, never half of one.

:func:`beats_for` gives the board of a storage URL (one per process),
:func:`board_of` the board of a storage that ``open_storage`` returned.
Key names are in :mod:`ivory_hydra.stores.format`.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import hashlib
import json
import os
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ivory_hydra.stores.optuna_storage import is_grpc, is_journal, open_storage, url_of
from ivory_hydra.stores.tables import beats_table, create_tables

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

T = TypeVar("T")

#: The folder of a journal's beats is ``<journal>`` plus this.
FOLDER_SUFFIX = ".beats"
#: Keys read in one query (well under SQLite's and PostgreSQL's bound-parameter limits).
_KEYS_PER_QUERY = 500


class Beats(abc.ABC):
    """The last liveness record of each key, shared by every process of a storage."""

    @abc.abstractmethod
    def write(self, key: str, record: Mapping[str, Any]) -> None:
        """Replace the record at ``key`` (JSON-serialisable values)."""

    @abc.abstractmethod
    def read(self, key: str) -> dict[str, Any] | None:
        """The record at ``key``, or None."""

    @abc.abstractmethod
    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every key that starts with ``prefix``, with its record."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the record at ``key`` (nothing happens if there is none)."""

    def read_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records at ``keys`` that exist (one read where the board allows it)."""
        return {key: record for key in keys if (record := self.read(key)) is not None}


# ---------------------------------------------------------------- databases


class SqlBeats(Beats):
    """The board as one table of the storage's database, a row per key."""

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self.engine = engine
        self.url = url or str(engine.url)  # SQLAlchemy's str() hides the password
        self.table = beats_table()
        self._call(create_tables, engine)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        from ivory_hydra.core.redact import redact_url
        from ivory_hydra.stores import retry

        return retry.call(
            fn, *args, what=redact_url(self.url), unavailable=retry.storage_unavailable(self.url)
        )

    def write(self, key: str, record: Mapping[str, Any]) -> None:
        self._call(self._write, key, json.dumps(dict(record), sort_keys=True))

    def _write(self, key: str, text: str) -> None:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        t = self.table
        for _ in range(3):
            with self.engine.begin() as conn:
                if conn.execute(update(t).where(t.c.key == key).values(record=text)).rowcount:
                    return
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(t).values(key=key, record=text))
                return
            except IntegrityError:
                continue  # written meanwhile: overwrite it
        raise RuntimeError(f"beat {key!r} could not be written")

    def read(self, key: str) -> dict[str, Any] | None:
        return self._call(self._read, key)

    def _read(self, key: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            text = conn.execute(select(t.c.record).where(t.c.key == key)).scalar_one_or_none()
        return None if text is None else json.loads(text)

    def read_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self._call(self._read_many, list(keys)) if keys else {}

    def _read_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        from sqlalchemy import select

        t, found = self.table, {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), _KEYS_PER_QUERY):
                chunk = keys[start : start + _KEYS_PER_QUERY]
                rows = conn.execute(select(t.c.key, t.c.record).where(t.c.key.in_(chunk)))
                found.update((key, json.loads(text)) for key, text in rows)
        return found

    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self._call(self._items, prefix)

    def _items(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        from sqlalchemy import select

        t = self.table
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.key, t.c.record).where(t.c.key.like(pattern, escape="\\"))
            ).all()
        return [(key, json.loads(text)) for key, text in rows]

    def delete(self, key: str) -> None:
        self._call(self._delete, key)

    def _delete(self, key: str) -> None:
        from sqlalchemy import delete

        t = self.table
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.key == key))


# ---------------------------------------------------------------- journal files

_MAX_NAME = 200  # file names are at most 255 bytes on most file systems
_KEPT = 150  # characters of a long escaped key kept in its file name


def _escape(key: str) -> str:
    """A key as text that is safe in a file name (no ``/``, no leading ``.``).

    >>> _escape("trial/12"), _escape("../x"), _escape("a b%")
    ('trial%2F12', '%2E%2E%2Fx', 'a%20b%25')
    """
    return urllib.parse.quote(key, safe="").replace(".", "%2E")


def file_name(key: str) -> str:
    """The file name of ``key``'s record: the escaped key, or for a long one its
    beginning and a digest.

    >>> file_name("crew/s/0a1b")
    'crew%2Fs%2F0a1b'
    >>> len(file_name("x" * 1000)) <= 200
    True
    """
    name = _escape(key)
    if len(name) <= _MAX_NAME:
        return name
    return name[:_KEPT] + "~" + hashlib.sha256(key.encode()).hexdigest()[:32]


class FileBeats(Beats):
    """The board as a folder of small files, one per key, each replaced atomically.

    Each file holds ``{"key": ..., "record": ...}``; temporary files start
    with ``.`` and are never read.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def write(self, key: str, record: Mapping[str, Any]) -> None:
        text = json.dumps({"key": key, "record": dict(record)}, sort_keys=True)
        name = file_name(key)
        tmp = self.folder / f".{name[:40]}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            tmp.write_text(text)
        except FileNotFoundError:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text)
        try:
            os.replace(tmp, self.folder / name)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _load(self, path: Path) -> tuple[str, dict[str, Any]] | None:
        try:
            stored = json.loads(path.read_text())
            return str(stored["key"]), dict(stored["record"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # gone meanwhile, or not one of ours

    def read(self, key: str) -> dict[str, Any] | None:
        found = self._load(self.folder / file_name(key))
        return found[1] if found is not None and found[0] == key else None

    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        start = _escape(prefix)[:_KEPT]
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            return
        old = time.time() - 3600
        for entry in entries:
            if entry.name.startswith("."):
                with contextlib.suppress(OSError):  # a writer that died mid-write
                    if entry.stat().st_mtime < old:
                        os.unlink(entry.path)
                continue
            if not entry.name.startswith(start):
                continue
            found = self._load(Path(entry.path))
            if found is not None and found[0].startswith(prefix):
                yield found

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / file_name(key))


# ---------------------------------------------------------------- a gRPC proxy


class RemoteBeats(Beats):
    """The board of the database behind a gRPC storage proxy, through the proxy's
    records service (:mod:`ivory_hydra.stores.remote_records`)."""

    def __init__(self, url: str) -> None:
        from ivory_hydra.stores.remote_records import link_for

        self.link = link_for(url)

    def write(self, key: str, record: Mapping[str, Any]) -> None:
        self.link.call("BeatsWrite", key=key, record=dict(record))

    def read(self, key: str) -> dict[str, Any] | None:
        return self.link.call("BeatsRead", key=key)

    def read_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return dict(self.link.call("BeatsReadMany", keys=list(keys))) if keys else {}

    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from ((key, record) for key, record in self.link.call("BeatsItems", prefix=prefix))

    def delete(self, key: str) -> None:
        self.link.call("BeatsDelete", key=key)


class StudyBeats(Beats):
    """The board as system attributes of a bookkeeping study, through ``BaseStorage``
    calls only: behind Optuna's bare gRPC proxy (see
    :mod:`ivory_hydra.stores.study_records`). A deleted record is set to None."""

    def __init__(self, storage: Any) -> None:
        from ivory_hydra.stores.study_records import BEAT_PREFIX, records_study_id

        self.storage = storage
        self.study_id = records_study_id(storage)
        self.prefix = BEAT_PREFIX

    def write(self, key: str, record: Mapping[str, Any]) -> None:
        self.storage.set_study_system_attr(self.study_id, self.prefix + key, dict(record))

    def read(self, key: str) -> dict[str, Any] | None:
        return self.storage.get_study_system_attrs(self.study_id).get(self.prefix + key)

    def read_many(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        stored = self.storage.get_study_system_attrs(self.study_id) if keys else {}
        found = {key: stored.get(self.prefix + key) for key in keys}
        return {key: record for key, record in found.items() if record is not None}

    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        start = self.prefix + prefix
        for name, record in self.storage.get_study_system_attrs(self.study_id).items():
            if name.startswith(start) and record is not None:
                yield name[len(self.prefix) :], record

    def delete(self, key: str) -> None:
        self.storage.set_study_system_attr(self.study_id, self.prefix + key, None)


# ---------------------------------------------------------------- which board


@functools.lru_cache(maxsize=8)
def beats_for(url: str) -> Beats:
    """The beats board of the storage at ``url`` (one per process)."""
    if is_journal(url):
        return FileBeats(url + FOLDER_SUFFIX)
    if is_grpc(url):
        from ivory_hydra.stores.remote_records import serves_records

        return RemoteBeats(url) if serves_records(url) else StudyBeats(open_storage(url))
    return SqlBeats(open_storage(url).engine, url)  # type: ignore[attr-defined]


def board_of(storage: Any) -> Beats:
    """The beats board of a storage that ``open_storage`` returned."""
    return beats_for(url_of(storage))

"""The ledger: a few atomic records kept beside an Optuna storage.

Optuna's storages number trials atomically and let a WAITING trial be claimed
once, but they offer no counter or compare-and-set that is not a study, and a
bookkeeping study would show up in optuna-dashboard beside the user's sweeps.
The ledger fills that gap with the storage's own atomic operations:

* on a database (SQLite, PostgreSQL, MySQL), one small table,
  ``ivory_hydra_ledger``, in the same database, changed by single conditional
  ``UPDATE``/``INSERT`` statements;
* behind a gRPC storage proxy, that table of the proxy's database, through
  the records service that ``python -m ivory_hydra.proxy`` serves beside
  Optuna's (:class:`RemoteLedger`);
* behind Optuna's bare gRPC proxy, a log of trials in a bookkeeping study,
  replayed as a journal is (:mod:`ivory_hydra.stores.study_records`);
* on a journal file, a second journal file beside it (``<journal>.ivory``),
  written through Optuna's own ``JournalFileBackend`` (its lock and its
  append-only log): the first record in the log wins, as in Optuna's journal.
  A record torn by a crash is cut away before anything is appended
  (:mod:`ivory_hydra.stores.journal_files`).

Database operations wait out a lost connection (:class:`SqlLedger`).

It holds run and task numbers (``add``) and leases (``compare_and_set``).
Values are JSON; numbers are separate from values.
"""

from __future__ import annotations

import abc
import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ivory_hydra.stores.optuna_storage import is_grpc, is_journal, open_storage
from ivory_hydra.stores.tables import LEDGER_TABLE, create_tables, ledger_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

TABLE_NAME = LEDGER_TABLE
T = TypeVar("T")
JOURNAL_SUFFIX = ".ivory"


def _canonical(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


class Ledger(abc.ABC):
    """Atomic numbers and values by key, shared by every process of a storage."""

    @abc.abstractmethod
    def add(self, key: str, amount: int, token: str | None = None) -> int:
        """Add ``amount`` to the number at ``key`` (0 if new); return the number before.

        ``amount`` 0 reads the number and writes nothing. ``token`` names the
        write for a caller that may send it again (see :data:`WRITE_TOKEN_TTL`):
        a write whose token landed already is not applied again, and answers
        what it answered then.
        """

    @abc.abstractmethod
    def get(self, key: str) -> Any:
        """The value at ``key``, or None."""

    @abc.abstractmethod
    def compare_and_set(self, key: str, expected: Any, new: Any, token: str | None = None) -> bool:
        """Set ``key`` to ``new`` if its value is ``expected`` (None: no value); True if set.

        ``token``: as for :meth:`add`.
        """

    @abc.abstractmethod
    def items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        """Every key that starts with ``prefix`` and has a value, with its value."""


# ---------------------------------------------------------------- databases


#: Keys of the rows that record a landed write (see :class:`SqlLedger`).
LANDED_PREFIX = "ivory-landed/"
#: Seconds a write's token is remembered, so that a caller who lost its answer
#: may send it again (a worker behind a storage proxy waits ``storage_retry``,
#: 300 s by default, for a restarted proxy).
WRITE_TOKEN_TTL = 3600


class _Landed(Exception):  # noqa: N818 - a signal, not an error
    """The write's token is in the ledger already: it landed before."""


class SqlLedger(Ledger):
    """The ledger as one table of the storage's own database.

    Every operation runs under the stores' retry policy
    (:mod:`ivory_hydra.stores.retry`): a lost connection is waited out. A write
    whose commit went through just before the connection dropped must not
    apply twice (a counter would skip a range of slots; a compare-and-set
    would answer False although it won), so on a database server every write
    also records a row ``ivory-landed/<token>`` in its own transaction; a
    retry that finds it answers what the landed write did. These rows are
    deleted by the process's next write. (SQLite has no connection to lose.)
    A write with a caller's ``token`` (a worker's, sent through a storage
    proxy) records it on every database, and it is kept for
    :data:`WRITE_TOKEN_TTL` seconds: the caller may send the write again
    after a restart of the proxy, which forgot everything but the database.
    """

    def __init__(self, engine: Engine, url: str | None = None) -> None:
        self.engine = engine
        self.url = url or str(engine.url)  # SQLAlchemy's str() hides the password
        self.table = ledger_table()
        self._tokens = engine.dialect.name != "sqlite"
        self._landed: list[str] = []
        self._next_expiry = 0.0
        self._call(create_tables, engine)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        from ivory_hydra.core.redact import redact_url
        from ivory_hydra.stores import retry

        return retry.call(
            fn, *args, what=redact_url(self.url), unavailable=retry.storage_unavailable(self.url)
        )

    def _write(
        self, change: Callable[[Any, Callable[[Any, int], None]], Any], caller: str | None = None
    ) -> Any:
        """Run ``change(engine, landed)``, retried, applied once; return its result.

        ``change`` makes its change in transactions of ``engine`` and calls
        ``landed(conn, result)`` inside the one that makes it. ``caller``: the
        caller's token for this write, which may have landed already: then
        recording the token again fails, which rolls the change back (a
        write that does not change anything records no token: its token is
        looked up).
        """
        from sqlalchemy import delete, insert
        from sqlalchemy.exc import IntegrityError

        t = self.table
        token = LANDED_PREFIX + (caller or uuid.uuid4().hex)
        record = self._tokens or caller is not None
        # a caller's token is kept (its expiry as the row's value); ours go at our next write
        until = json.dumps(int(time.time()) + WRITE_TOKEN_TTL) if caller else None
        attempts = []

        def landed(conn: Any, result: int) -> None:
            if not record:
                return
            try:
                conn.execute(insert(t).values(key=token, number=result, value=until))
            except IntegrityError:
                if caller is None:
                    raise
                raise _Landed from None

        def attempt() -> Any:
            attempts.append(1)
            if record and not caller and len(attempts) > 1:
                found = self._landed_answer(token)
                if found is not None:  # the last attempt landed before its answer was lost
                    return found
            done, self._landed = self._landed, []  # (a row left by a failure is harmless)
            if done:
                with self.engine.begin() as conn:
                    conn.execute(delete(t).where(t.c.key.in_(done)))
            if caller:
                self._forget_expired()
            try:
                result = change(self.engine, landed)
            except _Landed:
                return self._landed_answer(token)
            if caller and not result:  # nothing changed now: did it change the first time?
                found = self._landed_answer(token)
                return result if found is None else found
            return result

        result = self._call(attempt)
        if self._tokens and not caller:
            self._landed.append(token)
        return result

    def _landed_answer(self, token: str) -> int | None:
        """What the write that recorded ``token`` answered, if it landed."""
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            found = conn.execute(select(t.c.number).where(t.c.key == token)).first()
        return None if found is None else int(found[0])

    def _forget_expired(self) -> None:
        """Delete the callers' tokens that expired (at most once a minute per process)."""
        from sqlalchemy import delete

        now = time.monotonic()
        if now < self._next_expiry:
            return
        self._next_expiry = now + 60
        t = self.table
        expired = json.dumps(int(time.time()))  # same width: text order is number order
        with self.engine.begin() as conn:
            conn.execute(
                delete(t).where(
                    t.c.key.startswith(LANDED_PREFIX, autoescape=True),
                    t.c.value.is_not(None),
                    t.c.value < expired,
                )
            )

    def add(self, key: str, amount: int, token: str | None = None) -> int:
        if amount == 0:  # a read
            return self._call(self._number, key)
        return int(
            self._write(lambda engine, landed: self._add(engine, landed, key, amount), token)
        )

    def _number(self, key: str) -> int:
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            number = conn.execute(select(t.c.number).where(t.c.key == key)).scalar_one_or_none()
        return int(number or 0)

    def _add(
        self, engine: Engine, landed: Callable[[Any, int], None], key: str, amount: int
    ) -> int:
        from sqlalchemy import insert, select, update
        from sqlalchemy.exc import IntegrityError

        t = self.table
        for _ in range(5):
            with engine.begin() as conn:
                changed = conn.execute(
                    update(t).where(t.c.key == key).values(number=t.c.number + amount)
                )
                if changed.rowcount:
                    # the UPDATE holds the row (or the database) until commit
                    after = conn.execute(select(t.c.number).where(t.c.key == key)).scalar_one()
                    landed(conn, int(after) - amount)
                    return int(after) - amount
            try:
                with engine.begin() as conn:
                    conn.execute(insert(t).values(key=key, number=amount, value=None))
                    landed(conn, 0)
                return 0
            except IntegrityError:
                continue  # created meanwhile: add to it
        raise RuntimeError(f"ledger key {key!r}: could not add {amount}")

    def get(self, key: str) -> Any:
        return self._call(self._get, key)

    def _get(self, key: str) -> Any:
        from sqlalchemy import select

        t = self.table
        with self.engine.connect() as conn:
            text = conn.execute(select(t.c.value).where(t.c.key == key)).scalar_one_or_none()
        return None if text is None else json.loads(text)

    def compare_and_set(self, key: str, expected: Any, new: Any, token: str | None = None) -> bool:
        return bool(
            self._write(lambda engine, landed: self._cas(engine, landed, key, expected, new), token)
        )

    def _cas(
        self, engine: Engine, landed: Callable[[Any, int], None], key: str, expected: Any, new: Any
    ) -> bool:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        t = self.table
        old_text, new_text = _canonical(expected), _canonical(new)
        condition = t.c.value.is_(None) if old_text is None else t.c.value == old_text
        with engine.begin() as conn:
            changed = conn.execute(
                update(t).where(t.c.key == key, condition).values(value=new_text)
            )
            if changed.rowcount:
                landed(conn, 1)
                return True
        if old_text is not None:
            return False
        try:
            with engine.begin() as conn:
                conn.execute(insert(t).values(key=key, number=0, value=new_text))
                landed(conn, 1)
            return True
        except IntegrityError:
            return False

    def items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        yield from self._call(self._items, prefix)

    def _items(self, prefix: str) -> list[tuple[str, Any]]:
        from sqlalchemy import select

        t = self.table
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.c.key, t.c.value).where(
                    t.c.key.like(pattern, escape="\\"), t.c.value.is_not(None)
                )
            ).all()
        return [(key, json.loads(text)) for key, text in rows]


# ---------------------------------------------------------------- journal files


class JournalLedger(Ledger):
    """The ledger as an append-only journal beside a journal storage.

    Every change is one appended record; replaying the log in order decides
    it: a compare-and-set applies only if the value it expects is still
    there, so when two processes race, the first record wins.

    ``log`` is the journal file's path, or any log with a journal backend's
    ``read_logs(start)`` and ``append_logs(records)``: behind Optuna's bare
    gRPC proxy, a bookkeeping study
    (:class:`~ivory_hydra.stores.study_records.StudyLog`).
    """

    def __init__(self, log: str | Any) -> None:
        from ivory_hydra.stores.journal_files import RepairingJournalFileBackend

        self.backend = RepairingJournalFileBackend(log) if isinstance(log, str) else log
        self._lock = threading.Lock()
        self._next = 0
        self._numbers: dict[str, int] = {}
        self._values: dict[str, str] = {}
        self._results: dict[str, Any] = {}
        self._answers: dict[str, Any] = {}  # what the writes with a caller's token answered

    def _sync(self) -> None:
        for record in self.backend.read_logs(self._next):
            self._next += 1
            self._apply(record)

    def _apply(self, record: dict[str, Any]) -> None:
        key = record["key"]
        if record["op"] == "add":
            before = self._numbers.get(key, 0)
            self._numbers[key] = before + int(record["amount"])
            result: Any = before
        else:
            current = self._values.get(key)
            result = current == record["expected"]
            if result:
                if record["new"] is None:
                    self._values.pop(key, None)
                else:
                    self._values[key] = record["new"]
        if record["id"] in self._results:
            self._results[record["id"]] = result
        if record.get("caller"):
            self._answers[record["id"]] = result

    def _write(self, record: dict[str, Any], caller: str | None = None) -> Any:
        with self._lock:
            if caller is not None:
                self._sync()
                if caller in self._answers:  # landed before its answer was lost
                    return self._answers[caller]
                record["caller"] = True
            record["id"] = caller or uuid.uuid4().hex
            self._results[record["id"]] = None
            self.backend.append_logs([record])
            self._sync()
            return self._results.pop(record["id"])

    def add(self, key: str, amount: int, token: str | None = None) -> int:
        if amount == 0:  # a read
            with self._lock:
                self._sync()
                return self._numbers.get(key, 0)
        return int(self._write({"op": "add", "key": key, "amount": amount}, token))

    def get(self, key: str) -> Any:
        with self._lock:
            self._sync()
            text = self._values.get(key)
        return None if text is None else json.loads(text)

    def compare_and_set(self, key: str, expected: Any, new: Any, token: str | None = None) -> bool:
        record = {"op": "cas", "key": key, "expected": _canonical(expected), "new": _canonical(new)}
        return bool(self._write(record, token))

    def items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        with self._lock:
            self._sync()
            found = [(k, v) for k, v in self._values.items() if k.startswith(prefix)]
        for key, text in found:
            yield key, json.loads(text)


# ---------------------------------------------------------------- a gRPC proxy


class RemoteLedger(Ledger):
    """The ledger of the database behind a gRPC storage proxy, through the proxy's
    records service (:mod:`ivory_hydra.stores.remote_records`)."""

    def __init__(self, url: str) -> None:
        from ivory_hydra.stores.remote_records import link_for

        self.link = link_for(url)

    def add(self, key: str, amount: int, token: str | None = None) -> int:
        token = token or uuid.uuid4().hex  # the write is sent again if its answer is lost
        return int(self.link.call("LedgerAdd", key=key, amount=amount, token=token))

    def get(self, key: str) -> Any:
        return self.link.call("LedgerGet", key=key)

    def compare_and_set(self, key: str, expected: Any, new: Any, token: str | None = None) -> bool:
        token = token or uuid.uuid4().hex  # the write is sent again if its answer is lost
        return bool(
            self.link.call("LedgerCompareAndSet", key=key, expected=expected, new=new, token=token)
        )

    def items(self, prefix: str) -> Iterator[tuple[str, Any]]:
        yield from ((key, value) for key, value in self.link.call("LedgerItems", prefix=prefix))


@functools.lru_cache(maxsize=8)
def ledger_for(url: str) -> Ledger:
    """The ledger kept beside the storage at ``url`` (one per process)."""
    if is_journal(url):
        return JournalLedger(url + JOURNAL_SUFFIX)
    if is_grpc(url):
        from ivory_hydra.stores.remote_records import serves_records

        if serves_records(url):
            return RemoteLedger(url)
        from ivory_hydra.stores.study_records import StudyLog

        return JournalLedger(StudyLog(open_storage(url)))  # Optuna's bare proxy
    return SqlLedger(open_storage(url).engine, url)  # type: ignore[attr-defined]

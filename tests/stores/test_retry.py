"""The stores' one retry policy: SQLite's locks, lost connections, and nothing else.

The errors are real: SQLite's "database is locked" from two connections on one
file, a refused connection from PostgreSQL's driver on a closed port, an
integrity error from SQLite.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import optuna
import pytest
import sqlalchemy

from ivory_hydra._compat import MLFLOW_DB_LOGGER
from ivory_hydra.errors import StorageUnavailableError
from ivory_hydra.stores import mlflow_client, retry


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(retry, "BASE_DELAY", 0.002)
    monkeypatch.setattr(retry, "MAX_DELAY", 0.05)
    yield
    retry.set_storage_retry(retry.STORAGE_RETRY)


def locked_error(tmp_path) -> sqlite3.OperationalError:
    """SQLite's own "database is locked": a second writer while the first holds the lock."""
    path = tmp_path / "locked.db"
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("CREATE TABLE t (x)")
    first.execute("BEGIN IMMEDIATE")
    second = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        second.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        return error
    finally:
        first.close()
        second.close()
    raise AssertionError("SQLite did not lock")


def refused() -> None:
    """Connect to PostgreSQL on a closed port: the driver's refusal, wrapped by SQLAlchemy."""
    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://u:hunter2@127.0.0.1:1/db", connect_args={"connect_timeout": 2}
    )
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def refused_error() -> BaseException:
    try:
        refused()
    except Exception as error:  # noqa: BLE001
        return error
    raise AssertionError("port 1 answered")


def test_what_is_transient(tmp_path):
    locked = locked_error(tmp_path)
    assert retry.is_locked_error(locked) and not retry.is_connection_error(locked)
    wrapped_lock = sqlalchemy.exc.OperationalError("INSERT", {}, locked)
    assert retry.is_locked_error(wrapped_lock) and not retry.is_connection_error(wrapped_lock)

    lost = refused_error()
    assert isinstance(lost, sqlalchemy.exc.OperationalError)
    assert retry.is_connection_error(lost) and not retry.is_locked_error(lost)
    try:  # as Optuna's RDBStorage wraps it: "invalid data in the commit"
        raise optuna.exceptions.StorageInternalError("invalid data in the commit") from lost
    except optuna.exceptions.StorageInternalError as internal:
        assert retry.is_connection_error(internal)

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (k PRIMARY KEY)")
    db.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError) as integrity:
        db.execute("INSERT INTO t VALUES (1)")
    wrapped = sqlalchemy.exc.IntegrityError("INSERT", {}, integrity.value)
    assert not retry.is_connection_error(wrapped) and not retry.is_locked_error(wrapped)
    assert not retry.is_connection_error(sqlalchemy.exc.OperationalError("x", {}, locked))


def test_locks_are_retried_a_bounded_number_of_times(tmp_path):
    locked = locked_error(tmp_path)
    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise locked
        return "ok"

    assert retry.call(locked_twice) == "ok" and len(calls) == 3

    def always_locked():
        calls.append(1)
        raise locked

    calls.clear()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        mlflow_client.retry(always_locked)
    assert len(calls) == retry.LOCK_ATTEMPTS

    def other_error():
        calls.append(1)
        raise ValueError("not a lock")

    calls.clear()
    with pytest.raises(ValueError):
        retry.call(other_error)
    assert len(calls) == 1


def test_the_back_off_is_jittered_and_grows(tmp_path, monkeypatch):
    monkeypatch.setattr(retry, "BASE_DELAY", 0.02)
    monkeypatch.setattr(retry, "MAX_DELAY", 0.08)
    locked = locked_error(tmp_path)
    stamps = []

    def always_locked():
        stamps.append(time.monotonic())
        raise locked

    with pytest.raises(sqlite3.OperationalError):
        retry.call(always_locked)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(gaps) == retry.LOCK_ATTEMPTS - 1
    assert 0.01 * 0.9 <= gaps[0] < 0.02 + 0.05  # in [x/2, x] with x = BASE_DELAY
    assert all(gap >= 0.04 * 0.9 for gap in gaps[3:])  # capped in [MAX/2, MAX]
    assert all(gap < 0.08 + 0.1 for gap in gaps)


def test_a_lost_connection_is_waited_out_for_the_bound():
    calls = []

    def down_then_up():
        calls.append(1)
        if len(calls) < 4:
            refused()
        return "back"

    assert retry.call(down_then_up) == "back" and len(calls) == 4

    retry.set_storage_retry(0.5)
    start = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        retry.call(
            refused,
            unavailable=retry.storage_unavailable("postgresql://u:hunter2@127.0.0.1:1/db"),
        )
    assert 0.5 <= time.monotonic() - start < 10
    message = str(info.value)
    assert "\n" not in message and "hunter2" not in message
    assert "postgresql://u:***@127.0.0.1:1/db" in message and "run the same command" in message
    with pytest.raises(sqlalchemy.exc.OperationalError):  # no `unavailable`: the error itself
        retry.call(refused)


def test_a_nested_call_is_retried_by_the_outermost_only(tmp_path):
    locked = locked_error(tmp_path)
    inner_calls = []

    def inner():
        inner_calls.append(1)
        raise locked

    with pytest.raises(sqlite3.OperationalError):
        retry.call(lambda: retry.call(inner))
    assert len(inner_calls) == retry.LOCK_ATTEMPTS


def test_mlflows_log_of_a_retried_error_is_quiet(tmp_path, caplog):
    locked = locked_error(tmp_path)
    logger = logging.getLogger(MLFLOW_DB_LOGGER)
    calls = []

    def logs_then_works():
        calls.append(1)
        if len(calls) == 1:
            try:
                raise locked
            except sqlite3.OperationalError:
                logger.exception("SQLAlchemy database error. The following exception is caught.")
                raise
        return "ok"

    with caplog.at_level(logging.ERROR, logger=MLFLOW_DB_LOGGER):
        assert retry.call(logs_then_works) == "ok"
        assert not [r for r in caplog.records if r.name == MLFLOW_DB_LOGGER]
        try:  # outside a retried call it is still logged
            raise locked
        except sqlite3.OperationalError:
            logger.exception("SQLAlchemy database error. The following exception is caught.")
    assert [r for r in caplog.records if r.name == MLFLOW_DB_LOGGER]


def test_the_bound_is_checked():
    with pytest.raises(ValueError, match="storage_retry"):
        retry.set_storage_retry(-1)

"""The records service: the ledger and the beats board through a real proxy process.

``python -m ivory_hydra.proxy`` in front of SQLite and of a real PostgreSQL
server; the ledger's and the board's own contract tests run again through it
(imported below, so they run here with this module's ``url``). Then what a
user meets first: Optuna's bare proxy, a URL without a port, nothing listening.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy
from grpc_proxy import start_proxy
from test_beats import test_write_read_items_delete  # noqa: F401 - run through the proxy
from test_ledger import (  # noqa: F401 - run through the proxy
    test_add_returns_the_number_before,
    test_compare_and_set,
    test_items_by_prefix_escapes_like_wildcards,
    test_numbering,
    test_processes_racing_never_get_the_same_number_and_one_wins_the_lease,
)

from ivory_hydra.errors import StoreError
from ivory_hydra.stores.beats import RemoteBeats, beats_for
from ivory_hydra.stores.ledger import RemoteLedger, ledger_for
from ivory_hydra.stores.optuna_storage import check_storage, open_storage, storage_url
from ivory_hydra.stores.tables import BEATS_TABLE, LEDGER_TABLE

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path):
    if request.param == "sqlite":
        return storage_url(None, tmp_path)
    from postgres_server import fresh_database

    return fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def proxy(database):
    with start_proxy(database) as proxy:
        yield proxy


@pytest.fixture
def url(proxy):
    return proxy.url


def count(database: str, table: str) -> int:
    engine = sqlalchemy.create_engine(database)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        engine.dispose()


def test_records_live_in_the_databases_own_tables_out_of_the_study_list(database, proxy):
    ledger, board = ledger_for(proxy.url), beats_for(proxy.url)
    assert isinstance(ledger, RemoteLedger) and isinstance(board, RemoteBeats)
    assert ledger.add("numbers/e/run", 4) == 0
    board.write("worker/s/1", {"at": 1.0})
    assert count(database, LEDGER_TABLE) >= 1 and count(database, BEATS_TABLE) == 1
    assert open_storage(proxy.url).get_all_studies() == []  # no bookkeeping study
    calls = proxy.calls()
    assert calls["LedgerAdd"] == 1 and calls["BeatsWrite"] == 1


def test_optunas_bare_proxy_is_named_before_anything_is_written(tmp_path):
    database = storage_url(None, tmp_path)
    with start_proxy(database, bare=True) as bare:
        port = bare.url.rpartition(":")[2]
        with pytest.raises(StoreError) as info:
            check_storage(bare.url)
        assert str(info.value) == (
            f"cannot open this Optuna storage ({bare.url}): it serves Optuna's storage but not "
            "ivory-hydra's records: start the proxy with "
            f"`python -m ivory_hydra.proxy STORAGE_URL --port {port}`"
        )
        assert "\n" not in str(info.value)
        assert open_storage(bare.url).get_all_studies() == []


def test_a_url_without_a_port_fails_at_once():
    with pytest.raises(
        StoreError, match=r"grpc://proxy\.internal has no port: give grpc://HOST:PORT"
    ):
        check_storage("grpc://proxy.internal")


def test_nothing_listening_fails_within_seconds():
    with socket_in_use() as port:  # bound, never listening: nothing answers
        start = time.monotonic()
        with pytest.raises(StoreError, match=f"no gRPC server answers at 127.0.0.1:{port}"):
            check_storage(f"grpc://127.0.0.1:{port}")
        assert time.monotonic() - start < 10


def socket_in_use():
    import contextlib
    import socket

    @contextlib.contextmanager
    def bound():
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            yield sock.getsockname()[1]

    return bound()


@pytest.mark.parametrize(
    "storage, reason",
    [
        ("/tmp/sweep.journal", "the proxy serves a database (workers share a journal file"),
        ("postgresql://me:hunter2@127.0.0.1:1/nowhere", "cannot open this Optuna storage"),
    ],
    ids=["journal", "unreachable"],
)
def test_the_proxy_refuses_what_it_cannot_serve_in_one_line(storage, reason):
    result = subprocess.run(
        [sys.executable, "-m", "ivory_hydra.proxy", storage, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.stderr


def test_importing_the_stores_does_not_import_grpc():
    code = (
        "import sys, ivory_hydra.stores.ledger, ivory_hydra.stores.beats, "
        "ivory_hydra.stores.optuna_storage; assert 'grpc' not in sys.modules, 'grpc imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

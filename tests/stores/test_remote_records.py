"""The records service: the ledger and the beats board through a real proxy process.

``python -m ivory_hydra.proxy`` in front of SQLite and of a real PostgreSQL
server; the ledger's and the board's own contract tests run again through it
(imported below, so they run here with this module's ``url``), and again
through Optuna's bare proxy, where the records go to a bookkeeping study. Then
what a user meets first: a URL without a port, nothing listening.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import pytest
import sqlalchemy
from grpc_proxy import start_proxy
from optuna.study import StudyDirection
from test_beats import test_write_read_items_delete  # noqa: F401 - run through the proxy
from test_ledger import (  # noqa: F401 - run through the proxy
    test_a_write_sent_again_with_its_token_is_applied_once,
    test_add_returns_the_number_before,
    test_compare_and_set,
    test_items_by_prefix_escapes_like_wildcards,
    test_numbering,
    test_processes_racing_never_get_the_same_number_and_one_wins_the_lease,
)

from ivory_hydra.errors import StoreError
from ivory_hydra.stores.beats import RemoteBeats, StudyBeats, beats_for
from ivory_hydra.stores.ledger import JournalLedger, RemoteLedger, ledger_for
from ivory_hydra.stores.optuna_storage import check_storage, open_storage, storage_url
from ivory_hydra.stores.study_records import RECORDS_STUDY, StudyLog
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


@pytest.fixture(params=["ivory", "bare"])
def url(request, database):
    """``python -m ivory_hydra.proxy``, or Optuna's bare proxy (a bookkeeping study)."""
    with start_proxy(database, bare=request.param == "bare") as proxy:
        yield proxy.url


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


def test_behind_optunas_bare_proxy_records_go_to_a_bookkeeping_study(tmp_path, caplog):
    database = storage_url(None, tmp_path)
    with start_proxy(database, bare=True) as bare:
        check_storage(bare.url)  # it serves, and nothing is written to check it
        storage = open_storage(bare.url)
        assert storage.get_all_studies() == []
        ledger, board = ledger_for(bare.url), beats_for(bare.url)
        assert isinstance(ledger, JournalLedger) and isinstance(ledger.backend, StudyLog)
        assert isinstance(board, StudyBeats)
        assert ledger.add("numbers/e/run", 4) == 0 and ledger.add("numbers/e/run", 1) == 4
        board.write("worker/s/1", {"at": 1.0})
        [study] = storage.get_all_studies()
        assert study.study_name == RECORDS_STUDY and study.system_attrs
        records = storage.get_all_trials(storage.get_study_id_from_name(RECORDS_STUDY))
        assert len(records) == 2  # one trial per record
    port = bare.url.rpartition(":")[2]
    said = [r.getMessage() for r in caplog.records if "Optuna's own proxy" in r.getMessage()]
    assert said == [
        f"{bare.url} is Optuna's own proxy: ivory-hydra keeps its records in the study "
        "'ivory-hydra-records', which optuna-dashboard lists (`python -m ivory_hydra.proxy "
        f"STORAGE_URL --port {port}` keeps them out of it)"
    ]


def test_a_proxy_gone_for_a_moment_is_waited_out(tmp_path, caplog):
    """Optuna's calls and the records' idempotent calls wait for the proxy to be back."""
    import threading

    database = storage_url(None, tmp_path)
    with start_proxy(database) as first:
        storage, board = open_storage(first.url), beats_for(first.url)
        storage.create_new_study([StudyDirection.MINIMIZE], "s")
        board.write("trial/1", {"at": 1.0})
    port = int(first.url.rpartition(":")[2])
    with contextlib.ExitStack() as stack:
        threading.Timer(2.0, lambda: stack.enter_context(start_proxy(database, port=port))).start()
        assert [s.study_name for s in storage.get_all_studies()] == ["s"]  # waits
        assert board.read("trial/1") == {"at": 1.0}
    said = [r.getMessage() for r in caplog.records if "Lost the connection" in r.getMessage()]
    assert said and said[0].startswith(f"Lost the connection to {first.url} (")


def test_a_ledger_write_sent_again_to_a_restarted_proxy_is_applied_once(database):
    """A proxy restart cuts a write's answer off after it landed: the worker sends it
    again, with its token, to the new proxy process, which finds it in the database."""
    with start_proxy(database) as first:
        link = RemoteLedger(first.url).link
        assert link.call("LedgerAdd", key="n/a", amount=2, token="t1") == 0
        assert link.call("LedgerCompareAndSet", key="k", expected=None, new=1, token="t2")
    port = int(first.url.rpartition(":")[2])
    with start_proxy(database, port=port):
        assert link.call("LedgerAdd", key="n/a", amount=2, token="t1") == 0
        assert link.call("LedgerCompareAndSet", key="k", expected=None, new=1, token="t2")
        assert link.call("LedgerAdd", key="n/a", amount=0) == 2
        assert not link.call("LedgerCompareAndSet", key="k", expected=None, new=1, token="t3")


def test_a_trials_number_is_one_records_call_not_a_whole_trial(database, proxy):
    """Optuna's client reads a whole trial for its number; our proxy answers it from the
    trial's row (``TrialNumber``), and Optuna's bare proxy still answers it its way."""
    through = open_storage(proxy.url)
    study_id = through.create_new_study([StudyDirection.MINIMIZE], "s")
    ids = [through.create_new_trial(study_id) for _ in range(3)]
    before = proxy.calls()
    assert [through.get_trial_number_from_id(i) for i in ids] == [0, 1, 2]
    after = proxy.calls()
    assert after["TrialNumber"] - before.get("TrialNumber", 0) == 3
    assert after.get("GetTrial", 0) == before.get("GetTrial", 0)
    with start_proxy(database, bare=True) as bare:
        assert [open_storage(bare.url).get_trial_number_from_id(i) for i in ids] == [0, 1, 2]


def test_through_the_proxy_a_trials_params_come_in_name_order(database, proxy):
    """Optuna's client and its proxy pass them as a protobuf map, whose order changes
    from one process to the next (the database keeps them as the proxy set them)."""
    from ivory_hydra.core.objectives import Objectives
    from ivory_hydra.stores.distributions import distributions_for
    from ivory_hydra.stores.study import Study, TrialSpec

    through = open_storage(proxy.url)
    study = Study.open(through, "s", Objectives.of("minimize"))
    names = ["model", "lr", "b", "zeta", "a"]
    dists = distributions_for({name: [1, 2] for name in names})
    [(trial_id, _)] = study.create_trials([TrialSpec(dict.fromkeys(names, 1), dists)])
    assert list(through.get_trial(trial_id).params) == sorted(names)
    [trial] = through.get_all_trials(study.study_id)
    assert list(trial.params) == list(trial.distributions) == sorted(names)


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

"""A storage outage is waited out: a real PostgreSQL server stopped and started mid-operation.

The server is this module's own (the session's is shared by other tests):
``stop()`` ends every session at once, as a restart does; ``start()`` brings
it back on the same port with the same data. An ``mlflow server`` is crashed
and restarted the same way.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import optuna
import pytest

from ivory_hydra.core.objectives import Objectives
from ivory_hydra.errors import StorageUnavailableError, StoreError
from ivory_hydra.stores import retry, trials
from ivory_hydra.stores.beats import beats_for
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.optuna_storage import open_storage
from ivory_hydra.stores.study import Study, TrialSpec

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUTAGE = 4.0  # seconds the server is down


@pytest.fixture(scope="module")
def server():
    from postgres_server import postgres_server

    with postgres_server() as srv:
        yield srv


@pytest.fixture
def database(server):
    from postgres_server import fresh_database

    server.start()  # a test before may have left it stopped
    yield fresh_database(server.url)
    server.start()
    retry.set_storage_retry(retry.STORAGE_RETRY)


def spec(i: int) -> TrialSpec:
    return TrialSpec({"a": i}, distributions_for({"a": list(range(100))}), {"slot": f"0.{i}"})


def down_for(server, seconds: float) -> threading.Thread:
    """Stop the server now; start it again ``seconds`` later, on another thread."""
    server.stop()

    def later():
        time.sleep(seconds)
        server.start()

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    return thread


def test_calls_made_during_an_outage_succeed_once_the_server_is_back(server, database):
    from postgres_server import fresh_database

    other = fresh_database(server.url)  # opened for the first time while the server is down
    storage = open_storage(database)
    study = Study.open(storage, "s", Objectives.of("minimize"))
    [(first, _)] = study.create_trials([spec(0)])
    ledger, board = ledger_for(database), beats_for(database)
    assert ledger.add("numbers/e/run", 1) == 0
    cached = optuna.load_study(study_name="s", storage=storage)  # Optuna's _CachedStorage
    assert len(cached.trials) == 1

    calls = {
        "start": lambda: trials.start(storage, first),
        "create": lambda: study.create_trials([spec(1)]),
        "attr": lambda: storage.set_trial_user_attr(first, "k", "v"),
        "report": lambda: storage.set_trial_intermediate_value(first, 0, 0.5),
        "cached": lambda: len(cached.trials),
        "add": lambda: ledger.add("numbers/e/run", 2),
        "cas": lambda: ledger.compare_and_set("lease/s", None, {"owner": 1}),
        "beat": lambda: board.write("trial/x", {"at": 1.0}),
        "open": lambda: Study.open(open_storage(other), "t", Objectives.of("maximize")).created,
    }
    results, took = {}, {}

    def run(name):
        start = time.monotonic()
        try:
            results[name] = calls[name]()
        except Exception as error:  # noqa: BLE001 - the test reports it
            results[name] = error
        took[name] = time.monotonic() - start

    back = down_for(server, OUTAGE)
    threads = [threading.Thread(target=run, args=(name,)) for name in calls]
    for thread in threads:  # every call is issued while the server is down
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    back.join(timeout=60)
    assert not [r for r in results.values() if isinstance(r, Exception)], results
    assert min(took.values()) >= OUTAGE - 1.0, took  # each waited for the server
    # "create" runs beside "cached", which may see its trial or not
    assert results["start"] and results["cached"] in (1, 2) and results["open"]
    assert results["add"] == 1 and results["cas"]
    assert sorted(t.user_attrs.get("slot") for t in study.trials()) == ["0.0", "0.1"]  # once
    assert storage.get_trial(first).user_attrs["k"] == "v"
    assert storage.get_trial(first).intermediate_values == {0: 0.5}
    assert ledger.add("numbers/e/run", 0) == 3 and ledger.get("lease/s") == {"owner": 1}
    assert board.read("trial/x") == {"at": 1.0}


def test_a_writer_in_full_flow_loses_nothing_across_a_restart(server, database):
    storage = open_storage(database)
    study = Study.open(storage, "s", Objectives.of("minimize"))
    ledger = ledger_for(database)
    [(trial_id, _)] = study.create_trials([spec(0)])
    errors, written, slowest = [], [], [0.0]
    stop = threading.Event()

    def writer():
        step = 0
        while not stop.is_set():
            start = time.monotonic()
            try:
                storage.set_trial_intermediate_value(trial_id, step, float(step))
                ledger.add("counter", 1)
            except Exception as error:  # noqa: BLE001 - the test reports it
                errors.append(error)
                return
            slowest[0] = max(slowest[0], time.monotonic() - start)
            written.append(step)
            step += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(1.0)
    down_for(server, OUTAGE).join(timeout=60)
    time.sleep(1.0)
    stop.set()
    thread.join(timeout=120)
    assert not errors, errors
    assert slowest[0] >= OUTAGE - 1.0  # a call spanned the outage
    assert sorted(storage.get_trial(trial_id).intermediate_values) == written
    assert ledger.add("counter", 0) == len(written)  # each add counted once


def test_past_the_bound_the_error_says_so_in_one_line_without_the_password(server, database):
    from postgres_server import PASSWORD

    storage = open_storage(database)
    Study.open(storage, "s", Objectives.of("minimize"))
    ledger = ledger_for(database)
    retry.set_storage_retry(2.0)
    server.stop()
    try:
        for call in (storage.get_all_studies, lambda: ledger.add("n", 1)):
            start = time.monotonic()
            with pytest.raises(StorageUnavailableError) as info:
                call()
            assert 2.0 <= time.monotonic() - start < 20
            message = str(info.value)
            assert "\n" not in message and PASSWORD not in message
            assert database.replace(PASSWORD, "***") in message
            assert "run the same command again to resume" in message
    finally:
        server.start()
    assert storage.get_all_studies()  # and it works again


def test_a_wrong_password_is_not_waited_for(server, database):
    from postgres_server import PASSWORD

    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        open_storage(database.replace(PASSWORD, "wrong-pw"))
    assert time.monotonic() - start < 10
    assert "wrong-pw" not in str(info.value)


@pytest.mark.mlflow_server
def test_an_mlflow_server_can_be_crashed_and_restarted_on_its_port(tmp_path):
    from mlflow.tracking import MlflowClient
    from mlflow_server import mlflow_server

    with mlflow_server(tmp_path) as srv:
        client = MlflowClient(srv.url)
        experiment = client.create_experiment("e")
        run = client.create_run(experiment).info.run_id
        pid = srv.proc.pid
        srv.stop(kill=True)
        with pytest.raises(OSError):  # nobody answers on the port
            urllib.request.urlopen(f"{srv.url}/health", timeout=5)
        srv.start()
        assert srv.proc.pid != pid
        assert client.get_run(run).info.run_id == run  # the same port and store


@pytest.mark.parametrize("tokens", [True, False])
def test_a_ledger_write_that_landed_before_its_connection_dropped_applies_once(
    server, database, tokens
):
    """The commit goes through, then the connection is killed: the retry must not add again."""
    import sqlalchemy

    ledger = ledger_for(database)
    ledger._tokens = tokens  # False: how it would be without the landed-write rows
    admin = sqlalchemy.create_engine(database)
    applied = []

    def add_then_lose_the_connection(engine, landed):
        result = ledger._add(engine, landed, "counter", 5)
        applied.append(result)
        if len(applied) == 1:
            with engine.connect() as conn:
                pid = conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
                with admin.begin() as other:
                    other.execute(sqlalchemy.text(f"SELECT pg_terminate_backend({pid})"))
                conn.execute(sqlalchemy.text("SELECT 1"))  # the connection is gone
        return result

    try:
        answer = ledger._write(add_then_lose_the_connection)
    finally:
        ledger._tokens = True
        admin.dispose()
    if tokens:  # added once, and the answer is the landed write's
        assert answer == 0 and applied == [0] and ledger.add("counter", 0) == 5
    else:  # the hazard: added twice, numbers 0-4 handed to nobody
        assert answer == 5 and applied == [0, 5] and ledger.add("counter", 0) == 10

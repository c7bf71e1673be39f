"""The MLflow stores that ivory-hydra makes: WAL mode, one fsync per write."""

from __future__ import annotations

import sqlite3

from ivory_hydra.stores.mlflow_client import client_for, prepare_store


def _synchronous(uri: str) -> int:
    """The ``synchronous`` level of a connection from the client's engine (1 NORMAL, 2 FULL)."""
    from ivory_hydra import _compat

    engine = _compat.sqlalchemy_store_engine(client_for(uri))
    with engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar())


def _journal_mode(path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_new_store_is_in_wal_mode_and_its_connections_skip_an_fsync(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    prepare_store(uri)
    assert _journal_mode(tmp_path / "mlflow.db") == "wal"
    assert _synchronous(uri) == 1
    client = client_for(uri)
    run = client.create_run(client.create_experiment("e"))
    client.set_terminated(run.info.run_id, "FINISHED")
    default = client.get_experiment("0").artifact_location
    assert default.endswith(f"{tmp_path}/mlruns/0"), default
    with sqlite3.connect(tmp_path / "mlflow.db") as db:  # a reader beside the writer sees it
        assert db.execute("SELECT status FROM runs").fetchall() == [("FINISHED",)]


def test_a_store_the_user_made_keeps_its_journal_mode_and_full_sync(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/theirs.db"
    MlflowClient(uri).search_experiments()  # made by MLflow itself: rollback journal
    assert _journal_mode(tmp_path / "theirs.db") == "delete"
    assert _synchronous(uri) == 2
    assert _journal_mode(tmp_path / "theirs.db") == "delete"

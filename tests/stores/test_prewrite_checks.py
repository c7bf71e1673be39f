"""Unusable stores are named before anything is written: a corrupt SQLite file, no cache folder.

Through real Hydra apps (subprocesses), checking that neither store was written.
"""

from __future__ import annotations

import os
import sqlite3

import pytest
from conftest import run_app

from ivory_hydra.errors import StoreError
from ivory_hydra.stores.mlflow_client import check_tracking_uri
from ivory_hydra.stores.optuna_storage import check_storage, storage_url


def corrupt(path, kind: str) -> bytes:
    data = os.urandom(4096) if kind == "random" else b"these are my notes\n" * 50
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("kind", ["random", "text"])
def test_check_storage_names_a_corrupt_sqlite_file_in_sqlites_words(kind, tmp_path):
    data = corrupt(tmp_path / "optuna.db", kind)
    with pytest.raises(StoreError) as info:
        check_storage(storage_url(None, tmp_path))
    assert "file is not a database" in str(info.value)
    assert str(tmp_path / "optuna.db") in str(info.value)
    assert (tmp_path / "optuna.db").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]  # no -wal, no -journal


def test_healthy_and_empty_sqlite_files_pass(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")  # SQLite makes a database of it
    check_storage(storage_url("empty.db", tmp_path))
    sqlite3.connect(tmp_path / "real.db").execute("CREATE TABLE t (x)").connection.close()
    check_storage(storage_url("real.db", tmp_path))
    corrupt(tmp_path / "mlflow.db", "random")
    with pytest.raises(StoreError, match="file is not a database"):
        check_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "text"])
def test_a_sweep_on_a_corrupt_optuna_db_stops_before_any_write(kind, tmp_path):
    data = corrupt(tmp_path / "optuna.db", kind)
    result = run_app(tmp_path, "a=0-3")  # MLflow on: its store must not be made either
    assert result.returncode != 0
    lines = [line for line in result.output.splitlines() if "file is not a database" in line]
    assert lines, result.output
    assert "hydra.sweeper.storage=" in lines[0] and str(tmp_path / "optuna.db") in lines[0]
    assert "invalid data in the commit" not in result.output
    assert (tmp_path / "optuna.db").read_bytes() == data
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "multirun").exists()


def unusable_home(tmp_path):
    """A HOME where nothing can be made: read-only, or (root writes anywhere) a file."""
    if os.geteuid() == 0:
        home = tmp_path / "home-is-a-file"
        home.write_text("")
    else:
        home = tmp_path / "home"
        home.mkdir()
        home.chmod(0o555)
    return home


def test_an_unusable_cache_folder_is_named_with_the_fix(tmp_path, monkeypatch):
    home = unusable_home(tmp_path)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with pytest.raises(StoreError) as info:
        check_tracking_uri(f"sqlite:///{tmp_path}/new/mlflow.db")
    message = str(info.value)
    assert str(home / ".cache" / "ivory-hydra") in message
    assert "set XDG_CACHE_HOME" in message and "make HOME" in message
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the fix works
    check_tracking_uri(f"sqlite:///{tmp_path}/new/mlflow.db")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "new").exists()  # nothing made


@pytest.mark.slow
def test_a_sweep_with_an_unusable_home_stops_before_any_write(tmp_path):
    home = unusable_home(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    result = run_app(work, "a=0-3", env=env)
    assert result.returncode != 0
    assert "hydra.sweeper.mlflow.tracking_uri=" in result.output, result.output
    assert str(home / ".cache" / "ivory-hydra") in result.output
    assert "set XDG_CACHE_HOME" in result.output
    assert sorted(p.name for p in work.iterdir()) == []  # no optuna.db, no mlflow.db

    cache = tmp_path / "cache"
    fixed = run_app(work, "a=0-3", env={**env, "XDG_CACHE_HOME": str(cache)})
    assert fixed.returncode == 0, fixed.output
    assert (work / "mlflow.db").exists() and any(cache.glob("ivory-hydra/mlflow-*.db"))

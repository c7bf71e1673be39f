"""Where the truth lives: storage URLs, reachability before any write, fresh files."""

from __future__ import annotations

import time

import pytest

from ivory_hydra.errors import StoreError
from ivory_hydra.stores.optuna_storage import (
    check_storage,
    dashboard_command,
    is_journal,
    open_storage,
    storage_url,
)


def test_storage_urls(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path}/optuna.db"
    assert storage_url("runs.sqlite3", tmp_path) == f"sqlite:///{tmp_path}/runs.sqlite3"
    assert storage_url("journal.log", tmp_path) == f"{tmp_path}/journal.log"
    assert storage_url("mysql://u@127.0.0.1/db") == "mysql://u@127.0.0.1/db"
    assert is_journal(storage_url("j.log", tmp_path))
    assert dashboard_command("postgresql://u:pw@h/db") == "optuna-dashboard postgresql://u:***@h/db"


def test_an_unreachable_server_fails_fast_named_without_its_password(tmp_path):
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        check_storage("postgresql://me:hunter2@127.0.0.1:1/nowhere")
    assert time.monotonic() - start < 10
    assert "postgresql://me:***@127.0.0.1:1/nowhere" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_local_files_need_a_writable_folder(tmp_path):
    check_storage(storage_url(None, tmp_path / "new" / "folder"))  # made when opened
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open this Optuna storage"):
        check_storage(storage_url(None, tmp_path / "file" / "below"))
    assert not (tmp_path / "new").exists()  # checking writes nothing


def test_open_is_cached_per_process(tmp_path):
    url = storage_url(None, tmp_path)
    assert open_storage(url) is open_storage(url)
    assert (tmp_path / "optuna.db").exists()


def _works(url: str) -> set[str]:
    """Creates a study in the storage at ``url``; returns its database's tables."""
    import optuna
    import sqlalchemy

    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s").add_trial(
        optuna.trial.create_trial(value=1.0)
    )
    return set(sqlalchemy.inspect(storage.engine).get_table_names())


def test_a_fresh_sqlite_storage_is_a_copy_of_one_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = _works(storage_url(None, tmp_path / "a"))
    [pristine] = (tmp_path / "cache" / "ivory-hydra").glob("optuna-*.db")
    built = pristine.stat().st_mtime_ns
    second = _works(storage_url(None, tmp_path / "b"))
    assert pristine.stat().st_mtime_ns == built  # copied, not built again
    assert first == second and {"studies", "trials", "ivory_hydra_ledger"} <= second


def test_without_a_usable_cache_folder_a_storage_is_built_in_place(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    assert "ivory_hydra_beats" in _works(storage_url(None, tmp_path / "c"))

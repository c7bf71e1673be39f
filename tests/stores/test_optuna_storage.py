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

"""A study's attributes read from Optuna's SQLite file without Optuna's storage."""

from __future__ import annotations

import pytest

from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.sqlite_files import sqlite_file
from ivory_hydra.stores.sqlite_peek import NotReadable, study_user_attrs
from ivory_hydra.stores.study import Study


def test_the_attributes_are_what_optunas_storage_reads(tmp_path):
    url = storage_url(None, tmp_path)
    storage = open_storage(url)
    import optuna

    study = optuna.create_study(storage=storage, study_name="s")
    attrs = {"ivory:summary": {"finished": True, "best": [1.5, None]}, "x": "é", "n": 3}
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    optuna.create_study(storage=storage, study_name="other").set_user_attr("x", 0)
    path = sqlite_file(url)
    assert study_user_attrs(path, "s") == Study.find(storage, "s").user_attrs == attrs
    assert study_user_attrs(path, "missing") is None


def test_a_file_that_is_not_optunas_is_left_to_optuna(tmp_path):
    (tmp_path / "text.db").write_text("not a database")
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()
    for name in ("text.db", "empty.db"):
        with pytest.raises(NotReadable, match=name):
            study_user_attrs(tmp_path / name, "s")

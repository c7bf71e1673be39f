"""The stored format's version: a study of the previous release is opened and marked,
one of a newer release is refused with both versions named.

``fixtures/round2-optuna.db`` was written by ivory-hydra 0.2 (round 2) running
``app.py -m hydra.sweeper.mlflow.enabled=false a=0-3 b=0.0,0.5 fail_at=1``:
six jobs COMPLETE, the two with a=1 FAILED, no ``format_version`` attribute.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import optuna
import pytest
from conftest import run_app

from ivory_hydra.stores.format import FORMAT_VERSION, StudyAttr

FIXTURE = Path(__file__).parent / "fixtures" / "round2-optuna.db"
STUDY = "app-ivory-6ba2e3e0"
COMMAND = ("hydra.sweeper.mlflow.enabled=false", "a=0-3", "b=0.0,0.5", "fail_at=1")


def dump(path: Path) -> list[str]:
    """Every row of an SQLite file (its write-ahead log included)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return list(db.iterdump())


def study(path: Path) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{path}")


@pytest.mark.slow
def test_a_study_of_the_previous_release_resumes_and_is_marked(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "optuna.db")
    assert StudyAttr.FORMAT not in study(tmp_path / "optuna.db").user_attrs
    result = run_app(tmp_path, *COMMAND, f"hydra.sweeper.study_name={STUDY}", "hydra.sweep.dir=s")
    assert "Resuming: 6 finished jobs not run again" in result.output, result.output
    assert result.returncode == 1 and "2 of 8 jobs failed" in result.stderr  # a=1 fails again
    resumed = study(tmp_path / "optuna.db")
    assert resumed.user_attrs[StudyAttr.FORMAT] == FORMAT_VERSION
    trials = resumed.trials
    assert len(trials) == 10 and [t.params["a"] for t in trials[8:]] == [1, 1]
    assert [t.state.name for t in trials[:8]] == [t.state.name for t in study(FIXTURE).trials]


@pytest.mark.slow
def test_a_study_of_the_previous_release_resumes_under_its_default_name(tmp_path):
    # this release names the sweep app-product-a-b-6ba2e3e0 (the same digest): the
    # study that the previous release named by default is found and resumed
    shutil.copy(FIXTURE, tmp_path / "optuna.db")
    result = run_app(tmp_path, *COMMAND, "hydra.sweep.dir=s")
    assert f"(study '{STUDY}')" in result.output, result.output
    assert "Resuming: 6 finished jobs not run again" in result.output
    assert result.returncode == 1 and "2 of 8 jobs failed" in result.stderr  # a=1 fails again
    assert optuna.get_all_study_names(f"sqlite:///{tmp_path / 'optuna.db'}") == [STUDY]
    assert len(study(tmp_path / "optuna.db").trials) == 10


def test_a_study_of_a_newer_release_is_refused_before_anything_is_written(tmp_path):
    shutil.copy(FIXTURE, tmp_path / "optuna.db")
    study(tmp_path / "optuna.db").set_user_attr(StudyAttr.FORMAT, FORMAT_VERSION + 1)
    before = dump(tmp_path / "optuna.db")
    result = run_app(tmp_path, *COMMAND, f"hydra.sweeper.study_name={STUDY}", "hydra.sweep.dir=s")
    assert result.returncode == 1
    newer = FORMAT_VERSION + 1
    assert f"written by a newer ivory-hydra (stored format {newer}; this one reads 2 to" in (
        result.stderr
    )
    assert "upgrade ivory-hydra" in result.stderr
    assert len(study(tmp_path / "optuna.db").trials) == 8
    assert not (tmp_path / "s").exists() and not (tmp_path / "mlflow.db").exists()
    assert dump(tmp_path / "optuna.db") == before

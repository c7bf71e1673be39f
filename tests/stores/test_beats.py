"""The beats board: liveness records overwritten in place, beside the storage, never in it.

Real backends: an SQLite file, a journal file (its folder of small files) and
(slow) a real PostgreSQL server; the race runs in separate processes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy

from ivory_hydra._compat import frozen_trial_id
from ivory_hydra.core.objectives import Objectives
from ivory_hydra.stores import trials
from ivory_hydra.stores.beats import FileBeats, SqlBeats, beats_for, board_of
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.format import BEAT, BeatKeys
from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.study import Study, TrialSpec
from ivory_hydra.stores.tables import BEATS_TABLE

BACKENDS = ["sqlite", "journal", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    if request.param == "sqlite":
        return storage_url(None, tmp_path)
    if request.param == "journal":
        return storage_url(str(tmp_path / "sweep.journal"))
    from postgres_server import fresh_database

    return fresh_database(request.getfixturevalue("postgres_url"))


def rows(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {BEATS_TABLE}")).scalar()
    finally:
        engine.dispose()


def test_write_read_items_delete(url):
    board = beats_for(url)
    assert board is beats_for(url)  # one per process
    assert board.read("trial/1") is None
    board.write("trial/1", {"at": 1.0, "pid": 7})
    board.write("trial/1", {"at": 2.0, "pid": 7})  # overwritten
    board.write("trial/12", {"at": 3.0})
    board.write("worker/s_1/a", {"at": 4.0})
    board.write("worker/s%1/b", {"at": 5.0})
    assert board.read("trial/1") == {"at": 2.0, "pid": 7}
    assert dict(board.items("trial/1")) == {
        "trial/1": {"at": 2.0, "pid": 7},
        "trial/12": {"at": 3.0},
    }
    assert dict(board.items("worker/s_1/")) == {"worker/s_1/a": {"at": 4.0}}  # _ and % are literal
    assert dict(board.items("worker/s%")) == {"worker/s%1/b": {"at": 5.0}}
    assert board.read_many(["trial/12", "trial/2", "worker/s_1/a"]) == {
        "trial/12": {"at": 3.0},
        "worker/s_1/a": {"at": 4.0},
    }  # one read: the keys that exist
    assert board.read_many([]) == {}
    board.delete("trial/1")
    board.delete("trial/1")  # nothing there: fine
    assert board.read("trial/1") is None
    assert sorted(k for k, _ in board.items("")) == ["trial/12", "worker/s%1/b", "worker/s_1/a"]


def test_the_board_does_not_grow(url, tmp_path):
    board = beats_for(url)
    for i in range(200):
        board.write("trial/5", {"at": float(i)})
    assert board.read("trial/5") == {"at": 199.0}
    if isinstance(board, FileBeats):
        assert [p.name for p in board.folder.iterdir()] == ["trial%2F5"]
    else:
        assert isinstance(board, SqlBeats) and rows(url) == 1


def test_awkward_keys_stay_in_their_folder(tmp_path):
    board = FileBeats(tmp_path / "j.log.beats")
    keys = ["..", "../escape", "a/../../b", ".hidden", "x" * 600, "x" * 600 + "y", "é/ü"]
    for number, key in enumerate(keys):
        board.write(key, {"n": number})
    assert [board.read(key) for key in keys] == [{"n": n} for n in range(len(keys))]
    assert dict(board.items("x" * 600)) == {"x" * 600: {"n": 4}, "x" * 600 + "y": {"n": 5}}
    assert sorted(p.parent for p in tmp_path.rglob("*") if p.is_file()) == [board.folder] * 7
    assert all(len(p.name) <= 200 and not p.name.startswith(".") for p in board.folder.iterdir())


def test_trial_beats_go_to_the_board_not_into_the_journal(tmp_path):
    url = storage_url(str(tmp_path / "sweep.journal"))
    storage = open_storage(url)
    study = Study.open(storage, "s", Objectives.of("minimize"))
    [(trial_id, _)] = study.create_trials([TrialSpec({"a": 1}, distributions_for({"a": [1, 2]}))])
    assert trials.start(storage, trial_id)
    size = (tmp_path / "sweep.journal").stat().st_size
    for _ in range(50):
        trials.beat(storage, trial_id)
    assert (tmp_path / "sweep.journal").stat().st_size == size  # not one byte more
    record = trials.last_beat(storage, storage.get_trial(trial_id))
    assert record["pid"] > 0 and record == board_of(storage).read(BeatKeys.trial(trial_id))
    assert BEAT not in storage.get_trial(trial_id).system_attrs
    from ivory_hydra.core.outcomes import Outcome

    last = board_of(storage).read(BeatKeys.trial(trial_id))
    assert trials.finish(storage, trial_id, Outcome("complete", 1.0))
    assert board_of(storage).read(BeatKeys.trial(trial_id)) is None  # a finished trial's is gone
    assert list((tmp_path / "sweep.journal.beats").iterdir()) == []
    assert storage.get_trial(trial_id).system_attrs[BEAT] == last  # kept once, with the trial


def test_the_process_that_ran_a_trial_finishes_it_with_its_own_beat(tmp_path):
    """The runner gives its own last beat: it is what the trial keeps (the board is not
    read for it), and the board forgets the trial all the same."""
    from ivory_hydra.core.outcomes import Outcome

    storage = open_storage(storage_url(None, tmp_path))
    study = Study.open(storage, "s", Objectives.of("minimize"))
    [(trial_id, _)] = study.create_trials([TrialSpec({"a": 1}, distributions_for({"a": [1, 2]}))])
    assert trials.start(storage, trial_id)
    own = {"at": 7.0, "host": "h", "pid": 3}
    assert trials.finish(storage, trial_id, Outcome("complete", 1.0), beat=own)
    assert storage.get_trial(trial_id).system_attrs[BEAT] == own
    assert board_of(storage).read(BeatKeys.trial(trial_id)) is None


def test_a_trial_beaten_the_old_way_is_still_read(tmp_path):
    storage = open_storage(storage_url(None, tmp_path))
    study = Study.open(storage, "s", Objectives.of("minimize"))
    [(trial_id, _)] = study.create_trials([TrialSpec({"a": 1}, distributions_for({"a": [1, 2]}))])
    storage.set_trial_system_attr(trial_id, BEAT, {"at": 5.0, "host": "h", "pid": 3})
    assert trials.last_beat(storage, storage.get_trial(trial_id)) == {
        "at": 5.0,
        "host": "h",
        "pid": 3,
    }
    trials.beat(storage, trial_id)  # the board wins once there is a beat on it
    assert trials.last_beat(storage, storage.get_trial(trial_id))["at"] > 5.0


def test_board_of_a_storage_opened_elsewhere_is_refused(tmp_path):
    import optuna

    with pytest.raises(KeyError, match="not opened by ivory_hydra"):
        board_of(optuna.storages.InMemoryStorage())


WRITER = """
import sys
from ivory_hydra.stores.beats import beats_for
board = beats_for(sys.argv[1])
for i in range(400):
    board.write("trial/1", {"at": float(i), "pad": "x" * 2000})
"""


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_a_reader_never_sees_half_a_record(kind, tmp_path):
    url = storage_url(None if kind == "sqlite" else str(tmp_path / "j.log"), tmp_path)
    board = beats_for(url)
    board.write("trial/1", {"at": -1.0, "pad": ""})
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, url], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    seen = []
    while any(w.poll() is None for w in writers):
        record = board.read("trial/1")
        assert record is not None and set(record) == {"at", "pad"}
        seen.append(record["at"])
    assert all(w.wait(timeout=60) == 0 for w in writers), [w.stderr.read() for w in writers]
    assert board.read("trial/1")["at"] == 399.0
    assert len(set(seen)) > 1  # the reads overlapped the writes


def test_the_board_is_found_through_optunas_cached_storage(tmp_path):
    import optuna

    storage = open_storage(storage_url(None, tmp_path))
    cached = optuna.storages.get_storage(storage)  # what optuna.load_study uses
    assert cached is not storage and board_of(cached) is board_of(storage)


def test_a_trial_started_before_its_first_beat_is_not_taken_for_dead(tmp_path):
    """``trials.start`` switches the trial to RUNNING, then writes its first beat: a
    reader in between finds no beat, and must not reap a job that just started."""
    import time

    from optuna.trial import TrialState

    from ivory_hydra.stores.liveness import is_stale

    storage = open_storage(storage_url(None, tmp_path))
    study = Study.open(storage, "s", Objectives.of("minimize"))
    [(trial_id, _)] = study.create_trials([TrialSpec({"a": 1}, distributions_for({"a": [1, 2]}))])
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING)  # no beat yet
    record = trials.last_beat(storage, storage.get_trial(trial_id))
    assert record is not None and not is_stale(record, grace=6)
    assert is_stale(record, grace=6, now=time.time() + 10)  # and never beat: dead in time


def test_the_beats_of_many_trials_are_read_at_once(tmp_path):
    """``last_beats`` reads every trial's beat in one query, and says what ``last_beat``
    says of each: on the board, kept the old way, as of its start, or none."""
    from optuna.trial import TrialState

    storage = open_storage(storage_url(None, tmp_path))
    study = Study.open(storage, "s", Objectives.of("minimize"))
    dists = distributions_for({"a": [1, 2, 3, 4]})
    created = study.create_trials([TrialSpec({"a": a}, dists) for a in (1, 2, 3, 4)])
    (beaten, _), (old_way, _), (just_started, _), (waiting, _) = created
    trials.start(storage, beaten)
    storage.set_trial_system_attr(old_way, BEAT, {"at": 5.0})
    assert storage.set_trial_state_values(just_started, TrialState.RUNNING)  # no beat yet
    stored = [storage.get_trial(trial_id) for trial_id, _ in created]
    engine = board_of(storage).engine
    queries = []
    sqlalchemy.event.listen(engine, "before_cursor_execute", lambda *a: queries.append(a[2]))
    found = trials.last_beats(storage, stored)
    assert len(queries) == 1
    assert found == {frozen_trial_id(t): trials.last_beat(storage, t) for t in stored}
    assert found[beaten]["pid"] > 0 and found[old_way] == {"at": 5.0}
    assert found[just_started]["at"] == stored[2].datetime_start.timestamp()
    assert found[waiting] is None

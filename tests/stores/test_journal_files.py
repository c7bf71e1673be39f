"""A journal record torn by a crash is cut away before anything is appended onto it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import run_app

from ivory_hydra.stores.journal_files import RepairingJournalFileBackend, cut_torn_tail
from ivory_hydra.stores.ledger import JournalLedger

WARNING = "a record torn by a process that died while writing it"


def test_plain_optuna_breaks_on_a_torn_record_and_the_repair_prevents_it(tmp_path):
    """Why this exists: Optuna appends onto a torn line, and then no read works."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "plain.journal"
    storage = JournalStorage(JournalFileBackend(str(path)))
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    path.write_bytes(path.read_bytes()[:-20])  # a crash mid-append
    storage = JournalStorage(JournalFileBackend(str(path)))  # reads skip the torn line...
    with pytest.raises((AssertionError, json.JSONDecodeError)):  # ...appends onto it: lost
        storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "t")
    with pytest.raises(json.JSONDecodeError):  # the next record lands after a broken line
        JournalStorage(JournalFileBackend(str(path))).create_new_study(
            [optuna.study.StudyDirection.MINIMIZE], "u"
        )
    with pytest.raises(json.JSONDecodeError):  # and the journal cannot be opened any more
        JournalStorage(JournalFileBackend(str(path)))

    path.write_bytes(b"")
    storage = JournalStorage(RepairingJournalFileBackend(str(path)))
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    path.write_bytes(path.read_bytes()[:-20])
    storage = JournalStorage(RepairingJournalFileBackend(str(path)))
    storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "t")
    names = [s.study_name for s in JournalStorage(JournalFileBackend(str(path))).get_all_studies()]
    assert names == ["t"]  # "s" was the torn record: lost, as if never written


def test_a_tail_torn_while_the_journal_is_open_is_cut_before_the_next_append(tmp_path, caplog):
    path = tmp_path / "j.log"
    backend = RepairingJournalFileBackend(str(path))
    backend.append_logs([{"op": 1}, {"op": 2}])
    with open(path, "ab") as f:  # another process died in the middle of its append
        f.write(b'{"op":3,"pad":"xxxx')
    with caplog.at_level(logging.WARNING):
        backend.append_logs([{"op": 4}])
    assert [r["op"] for r in backend.read_logs(0)] == [1, 2, 4]
    [warning] = [r.getMessage() for r in caplog.records if WARNING in r.getMessage()]
    assert str(path) in warning and "cut its last 19 bytes" in warning


def test_a_last_line_that_does_not_parse_is_cut_on_open(tmp_path, caplog):
    path = tmp_path / "j.log"
    path.write_bytes(b'{"op":1}\n{"op":2}\nxx{"op":3}\n')  # appended onto a torn line
    with caplog.at_level(logging.WARNING):
        backend = RepairingJournalFileBackend(str(path))
    assert [r["op"] for r in backend.read_logs(0)] == [1, 2]
    assert len([r for r in caplog.records if WARNING in r.getMessage()]) == 1
    assert cut_torn_tail(str(path)) == 0  # nothing more to cut


def test_a_file_that_is_no_journal_is_left_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my notes, no newline at the end")
    assert cut_torn_tail(str(path)) == 0
    assert path.read_bytes() == b"my notes, no newline at the end"


def test_the_ledger_journal_is_repaired_too(tmp_path, caplog):
    path = tmp_path / "s.journal.ivory"
    ledger = JournalLedger(str(path))
    assert ledger.add("numbers/e/run", 3) == 0
    assert ledger.compare_and_set("lease/s", None, {"owner": 1})
    path.write_bytes(path.read_bytes()[:-15])  # the compare-and-set was torn
    with caplog.at_level(logging.WARNING):
        again = JournalLedger(str(path))
    assert [r for r in caplog.records if WARNING in r.getMessage()]
    assert again.get("lease/s") is None  # the torn record is lost...
    assert again.compare_and_set("lease/s", None, {"owner": 2})  # ...and the log goes on
    assert again.add("numbers/e/run", 1) == 3
    assert JournalLedger(str(path)).get("lease/s") == {"owner": 2}


def last_finish_end(journal: Path) -> int:
    """The offset just after the last record that finished a trial (COMPLETE)."""
    data, end, offset = journal.read_bytes(), None, 0
    for line in data.splitlines(keepends=True):
        offset += len(line)
        record = json.loads(line)
        if record.get("state") == optuna.trial.TrialState.COMPLETE and "trial_id" in record:
            end = offset
    assert end is not None
    return end


@pytest.mark.slow
@pytest.mark.parametrize("torn", ["a job's end", "the summary"])
def test_a_sweep_resumes_over_a_torn_journal(torn, tmp_path):
    journal = tmp_path / "s.journal"
    args = (f"hydra.sweeper.storage={journal}", "hydra.sweeper.mlflow.enabled=false", "a=0-3")
    first = run_app(tmp_path, *args)
    assert first.returncode == 0, first.output
    data = journal.read_bytes()
    # A crash 50 bytes before the end: of the last job's finishing record (the
    # sweep died as that job ended), or of the journal (its summary, written last).
    end = last_finish_end(journal) if torn == "a job's end" else len(data)
    journal.write_bytes(data[: end - 50])

    again = run_app(tmp_path, *args)
    third = run_app(tmp_path, *args)
    assert again.returncode == 0, again.output
    assert third.returncode == 0, third.output
    warnings = (again.output + third.output).count(WARNING)
    assert warnings == 1, again.output + third.output
    assert str(journal) in again.output and "cut its last" in again.output

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(journal)))  # plain Optuna reads it all
    [summary] = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    complete = sorted(t.user_attrs["slot"] for t in study.trials if t.state.name == "COMPLETE")
    assert complete == ["0.0", "0.1", "0.2", "0.3"]
    if torn == "a job's end":  # that job's trial was failed and the job ran again
        assert [t.state.name for t in study.trials].count("FAIL") == 1
        assert len(study.trials) == 5 and again.run_lines == ["[run#4] a=3"]
    else:  # every job had ended: nothing runs again
        assert len(study.trials) == 4 and again.run_lines == []
    assert third.run_lines == []
    assert study.user_attrs["summary"]["finished"]


def test_journals_opened_by_open_storage_and_the_ledger_are_repairing(tmp_path):
    code = """
import sys
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.optuna_storage import open_storage
from ivory_hydra.stores.journal_files import RepairingJournalFileBackend
storage = open_storage(sys.argv[1])
print(type(storage._backend).__name__, type(ledger_for(sys.argv[1]).backend).__name__)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s.journal")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["RepairingJournalFileBackend", "RepairingJournalFileBackend"]

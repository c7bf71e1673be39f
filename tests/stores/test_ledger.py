"""The ledger beside each Optuna storage: atomic numbers and compare-and-set.

Real backends only: an SQLite file, an Optuna journal file, and (slow) a real
PostgreSQL server. The races run in separate processes.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from ivory_hydra.stores.ledger import JournalLedger, SqlLedger, ledger_for
from ivory_hydra.stores.numbering import allocate
from ivory_hydra.stores.optuna_storage import storage_url

BACKENDS = ["sqlite", "journal", pytest.param("postgresql", marks=pytest.mark.slow)]


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    if request.param == "sqlite":
        return storage_url(None, tmp_path)
    if request.param == "journal":
        return storage_url(str(tmp_path / "journal.log"))
    from postgres_server import fresh_database

    return fresh_database(request.getfixturevalue("postgres_url"))


def test_add_returns_the_number_before(url):
    ledger = ledger_for(url)
    assert ledger.add("n/a", 3) == 0
    assert ledger.add("n/a", 2) == 3
    assert ledger.add("n/b", 1) == 0
    assert ledger.add("n/a", 1) == 5


def test_adding_nothing_reads_the_number_and_writes_nothing(url, tmp_path):
    ledger = ledger_for(url)
    assert ledger.add("n/new", 0) == 0
    ledger.add("n/a", 4)
    log = tmp_path / "journal.log.ivory"
    size = log.stat().st_size if log.exists() else None
    assert [ledger.add("n/a", 0) for _ in range(3)] == [4, 4, 4]
    assert ledger.add("n/a", 1) == 4
    if size is not None:  # the journal: a read appends no record
        assert log.stat().st_size > size
        grown = log.stat().st_size
        ledger.add("n/a", 0)
        assert log.stat().st_size == grown
    assert dict(ledger.items("n/")) == {}  # numbers are not values


def test_a_write_sent_again_with_its_token_is_applied_once(url):
    """What a worker does when a proxy restart cut the answer off: it sends the same
    write again, with the same token, and gets the first answer."""
    ledger = ledger_for(url)
    assert ledger.add("n/a", 2, token="t1") == 0
    assert ledger.add("n/a", 2, token="t1") == 0  # landed: not added again
    assert ledger.add("n/a", 3, token="t2") == 2
    assert ledger.add("n/a", 0) == 5
    assert ledger.compare_and_set("k", None, {"v": 1}, token="t3")
    assert ledger.compare_and_set("k", None, {"v": 1}, token="t3")  # it won the first time
    assert not ledger.compare_and_set("k", None, {"v": 2}, token="t4")
    assert not ledger.compare_and_set("k", None, {"v": 2}, token="t4")
    assert ledger.get("k") == {"v": 1}
    assert ledger.compare_and_set("k", {"v": 1}, None, token="t5")
    assert ledger.compare_and_set("k", {"v": 1}, None, token="t5")
    assert ledger.get("k") is None
    assert dict(ledger.items("n/")) == {} and dict(ledger.items("k")) == {}


def test_a_token_is_forgotten_once_it_expired(url, monkeypatch):
    from ivory_hydra.stores import ledger as module

    ledger = ledger_for(url)
    if not isinstance(ledger, SqlLedger):
        pytest.skip("a journal replays its tokens; it keeps no table to clean")
    monkeypatch.setattr(module, "WRITE_TOKEN_TTL", -5)  # expired as soon as written
    assert ledger.add("n/a", 1, token="old") == 0
    monkeypatch.setattr(module, "WRITE_TOKEN_TTL", 3600)
    ledger._next_expiry = 0.0  # the once-a-minute sweep is due
    assert ledger.add("n/a", 1, token="new") == 1
    landed = {key for key, _ in ledger.items(module.LANDED_PREFIX)}
    assert landed == {module.LANDED_PREFIX + "new"}
    assert ledger.add("n/a", 1, token="old") == 2  # forgotten: a new write


def test_compare_and_set(url):
    ledger = ledger_for(url)
    assert ledger.get("k") is None
    assert ledger.compare_and_set("k", None, {"owner": 1})
    assert not ledger.compare_and_set("k", None, {"owner": 2})
    assert ledger.get("k") == {"owner": 1}
    assert not ledger.compare_and_set("k", {"owner": 2}, {"owner": 3})
    assert ledger.compare_and_set("k", {"owner": 1}, {"owner": 3})
    assert ledger.compare_and_set("k", {"owner": 3}, None)
    assert ledger.get("k") is None
    assert ledger.compare_and_set("k", None, [1, 2])  # set again after a delete


def test_items_by_prefix_escapes_like_wildcards(url):
    ledger = ledger_for(url)
    ledger.compare_and_set("lease/a_1", None, 1)
    ledger.compare_and_set("lease/ab1", None, 2)
    ledger.compare_and_set("other/a_1", None, 3)
    ledger.add("lease/counter", 5)  # a number, no value
    assert dict(ledger.items("lease/a_")) == {"lease/a_1": 1}
    assert dict(ledger.items("lease/")) == {"lease/a_1": 1, "lease/ab1": 2}


def test_kinds_of_ledger(tmp_path):
    assert isinstance(ledger_for(storage_url(None, tmp_path)), SqlLedger)
    journal = ledger_for(storage_url(str(tmp_path / "j.log")))
    assert isinstance(journal, JournalLedger)
    assert (tmp_path / "j.log.ivory").exists()


def test_numbering(url):
    ledger = ledger_for(url)
    assert allocate(ledger, "torch", "run", 3) == 0
    assert allocate(ledger, "torch", "task") == 0
    assert allocate(ledger, "torch", "run", 2) == 3
    assert allocate(ledger, "other", "run") == 0
    with pytest.raises(ValueError, match="count must be positive"):
        allocate(ledger, "torch", "run", 0)
    with pytest.raises(ValueError, match="unknown kind"):
        allocate(ledger, "torch", "trial")


RACE = """
import sys
from ivory_hydra.stores.ledger import ledger_for
url, me = sys.argv[1], sys.argv[2]
ledger = ledger_for(url)
firsts = [ledger.add("numbers/e/run", 2) for _ in range(25)]
won = ledger.compare_and_set("lease/s", None, {"owner": me})
print(" ".join(map(str, firsts)), won)
"""


def test_processes_racing_never_get_the_same_number_and_one_wins_the_lease(url):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, url, str(i)], stdout=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    firsts = [int(n) for out in outputs for n in out[:-1]]
    assert sorted(firsts) == list(range(0, 200, 2))  # 100 reservations of 2, no overlap
    assert sorted(out[-1] for out in outputs) == ["False", "False", "False", "True"]
    winner = ledger_for(url).get("lease/s")["owner"]
    assert outputs[int(winner)][-1] == "True"

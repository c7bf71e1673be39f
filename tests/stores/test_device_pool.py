"""The device pool in the ledger: taken and given back by compare-and-set, freed when
its holder's process is gone.

Real backends (an SQLite file, a journal file, and slow: PostgreSQL) and real
processes: holders that live, holders killed with SIGKILL, and processes racing
for two devices.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections import defaultdict

import pytest

from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.format import Keys
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.liveness import HOST
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


def test_a_job_takes_free_devices_and_gives_them_back(url):
    pool = DevicePool(ledger_for(url))
    first, second = pool.holder(run="run#0"), pool.holder(run="run#1")
    taken: list[int] = []
    assert pool.take((0, 1, 2), 2, first, taken)
    assert taken == [0, 1]
    assert set(pool.holders()) == {0, 1}
    assert pool.holders()[0]["run"] == "run#0" and pool.holders()[0]["pid"] == os.getpid()
    other: list[int] = []
    assert not pool.take((0, 1, 2), 2, second, other)  # one left: all or nothing
    assert other == [] and set(pool.holders()) == {0, 1}
    pool.release(taken, first)
    assert taken == [] and pool.holders() == {}
    assert pool.take((0, 1, 2), 2, second, other, last=(2,))  # its last device first
    assert other == [2, 0]


def test_pinned_waits_for_exactly_its_last_devices(url):
    pool = DevicePool(ledger_for(url))
    holder, other = pool.holder(run="a"), pool.holder(run="b")
    held: list[int] = []
    assert pool.take((0, 1), 1, other, held, last=(1,))
    taken: list[int] = []
    assert not pool.take((0, 1), 1, holder, taken, last=(1,), pinned=True)  # 0 is free
    pool.release(held, other)
    assert pool.take((0, 1), 1, holder, taken, last=(1,), pinned=True) and taken == [1]


def test_a_holding_that_no_job_of_this_process_knows_is_taken_over(url, caplog):
    ledger = ledger_for(url)
    pool = DevicePool(ledger)
    leftover = pool.holder(run="run#7")  # written as a job that ended without giving it back
    assert ledger.compare_and_set(Keys.device(HOST, 0), None, leftover)
    assert pool.dead(leftover)
    taken: list[int] = []
    with caplog.at_level(logging.WARNING, logger="ivory_hydra.stores.devices"):
        assert pool.take((0,), 1, pool.holder(run="run#8"), taken)
    assert "device 0 of" in caplog.text and "was held by run#7" in caplog.text
    assert pool.holders()[0]["run"] == "run#8"


HOLD = """
import sys, time
from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.ledger import ledger_for
pool = DevicePool(ledger_for(sys.argv[1]))
taken = []
assert pool.take((0, 1), 1, pool.holder(run="run#1"), taken)
print(taken[0], flush=True)
time.sleep(120)
"""


def test_a_killed_holders_device_is_taken_over_and_a_live_ones_is_not(url, caplog):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        pool = DevicePool(ledger_for(url))
        [record] = pool.holders().values()
        assert record["pid"] == holder.pid and not pool.dead(record)
        taken: list[int] = []
        assert not pool.take((0,), 1, pool.holder(run="run#2"), taken)  # it lives: held
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert pool.dead(record)
    with caplog.at_level(logging.WARNING, logger="ivory_hydra.stores.devices"):
        assert pool.take((0,), 1, pool.holder(run="run#2"), taken)
    assert f"was held by run#1 (pid {holder.pid} on {HOST}), which is gone" in caplog.text
    assert taken == [0] and pool.holders()[0]["run"] == "run#2"


RACE = """
import json, sys, time
from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.ledger import ledger_for
pool = DevicePool(ledger_for(sys.argv[1]))
for i in range(int(sys.argv[2])):
    holder = pool.holder(run=f"{sys.argv[3]}.{i}")
    taken = []
    while not pool.take((0, 1), 1, holder, taken):
        time.sleep(0.005)
    start = time.time()
    time.sleep(0.03)
    print(json.dumps({"device": taken[0], "start": start, "end": time.time()}), flush=True)
    pool.release(taken, holder)
"""


def test_processes_racing_never_hold_one_device_at_the_same_time(url):
    rounds = 6
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, url, str(rounds), str(i)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in racers]
    assert [p.returncode for p in racers] == [0, 0, 0, 0]
    spans = defaultdict(list)
    for line in "".join(outputs).splitlines():
        held = json.loads(line)
        spans[held["device"]].append((held["start"], held["end"]))
    assert sum(map(len, spans.values())) == 4 * rounds
    for device, held in spans.items():
        held.sort()
        overlaps = [(a, b) for a, b in zip(held, held[1:], strict=False) if b[0] < a[1]]
        assert not overlaps, (device, overlaps)
    assert DevicePool(ledger_for(url)).holders() == {}

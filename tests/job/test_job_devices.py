"""A job's devices in its own process: held around the job, visible to it, given back;
a process keeps its devices once CUDA has read them.

A real SQLite ledger. The machine has no GPU, and torch is not installed: a module
named ``torch`` whose CUDA says it is initialized stands in for a job that used it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import types

import pytest

from ivory_hydra.job import devices as job_devices
from ivory_hydra.job.devices import cuda_initialized, held
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.optuna_storage import storage_url


@pytest.fixture
def ticket(tmp_path, monkeypatch):
    monkeypatch.setattr(job_devices, "_last", [])
    monkeypatch.setattr(job_devices, "_said", set())
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return Ticket(storage=storage_url(None, tmp_path), devices=(0, 1))


@pytest.fixture
def cuda_in_use(monkeypatch):
    cuda = types.SimpleNamespace(is_initialized=lambda: True)
    monkeypatch.setitem(__import__("sys").modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert cuda_initialized()


def pool_of(ticket: Ticket) -> DevicePool:
    return DevicePool(ledger_for(ticket.storage_url))


def test_the_job_sees_its_devices_and_the_process_gets_its_variables_back(ticket, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    with held(ticket, "run#0", 1) as devices:
        assert devices == (0,)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        assert os.environ["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert pool_of(ticket).holders()[0]["run"] == "run#0"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7" and "CUDA_DEVICE_ORDER" not in os.environ
    assert pool_of(ticket).holders() == {}


def test_devices_are_given_back_when_the_job_raises(ticket):
    with pytest.raises(RuntimeError), held(ticket, "run#0", 1):
        raise RuntimeError("the job failed")
    assert pool_of(ticket).holders() == {}


def test_no_devices_no_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with held(Ticket(storage=storage_url(None, tmp_path)), "run#0", 1) as devices:
        assert devices == () and "CUDA_VISIBLE_DEVICES" not in os.environ


def test_a_process_prefers_the_device_it_held_last(ticket):
    pool = pool_of(ticket)
    other, taken = pool.holder(run="elsewhere"), []
    with held(ticket, "run#0", 1) as first:
        assert first == (0,)
        assert pool.take(ticket.devices, 1, other, taken) and taken == [1]
    pool.release(taken, other)
    with held(ticket, "run#1", 2) as second:
        assert second == (0,)  # both free: the last one
    assert pool.take(ticket.devices, 1, other, taken, last=(0,)) and taken == [0]
    with held(ticket, "run#2", 3) as third:
        assert third == (1,)  # its last is taken: CUDA not initialized, so another will do
    pool.release(taken, other)


def test_once_cuda_read_its_devices_the_process_waits_for_them(ticket, cuda_in_use, caplog):
    with held(ticket, "run#0", 1) as first:
        assert first == (0,)
    pool = pool_of(ticket)
    other, taken = pool.holder(run="run#9"), []
    assert pool.take(ticket.devices, 1, other, taken, last=(0,)) and taken == [0]
    threading.Timer(0.8, pool.release, (taken, other)).start()
    started = time.monotonic()
    with (
        caplog.at_level(logging.INFO, logger="ivory_hydra.job.devices"),
        held(ticket, "run#1", 2) as second,
    ):
        waited = time.monotonic() - started
    assert second == (0,) and waited >= 0.7  # device 1 was free all along
    assert "CUDA was initialized in this process" in caplog.text
    assert "its next jobs wait for these devices" in caplog.text
    assert "[run#1] waits for its process's devices (held: 0 by run#9" in caplog.text


def test_cuda_initialized_before_any_job_is_warned_once(ticket, cuda_in_use, caplog):
    with caplog.at_level(logging.WARNING, logger="ivory_hydra.job.devices"):
        for run in ("run#0", "run#1"):
            with held(ticket, run, 1):
                pass
    assert caplog.text.count("before its job was given devices") == 1

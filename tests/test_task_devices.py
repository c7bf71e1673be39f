"""Devices through the task API: each run holds its devices while its loop body runs.

Real storages (SQLite, a journal file shared by two processes); no GPU here, so a
device is what ``CUDA_VISIBLE_DEVICES`` says inside the loop body.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import optuna
import pytest

import ivory_hydra as ivory
from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.ledger import ledger_for


def test_each_run_holds_a_device_and_the_process_gets_its_variable_back(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    client = ivory.create_client(tmp_path, mlflow=False, devices=[3, 1])
    task = client.create_task("gpu")
    seen = []
    for run in task.product(a=[1, 2, 3], verbose=0):
        seen.append((run.devices, os.environ["CUDA_VISIBLE_DEVICES"]))
        assert DevicePool(ledger_for(client.storage_url)).holders()[3]["run"] == run.name
        run.report(run.params["a"])
    assert seen == [((3,), "3")] * 3  # the device it held last, while free
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert DevicePool(ledger_for(client.storage_url)).holders() == {}
    study = optuna.load_study(study_name=task.study_name, storage=client.storage_url)
    assert [t.user_attrs["devices"] for t in study.trials] == [[3]] * 3


def test_a_run_left_by_break_gives_its_device_back(tmp_path):
    client = ivory.create_client(tmp_path, mlflow=False, devices=[0])
    for _run in client.create_task("gpu").product(a=[1, 2], verbose=0):
        break
    assert DevicePool(ledger_for(client.storage_url)).holders() == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"devices": [0, 0]}, "devices: device 0 is listed twice in [0, 0]"),
        ({"devices": [-2]}, "devices: -2 is not a device id"),
        ({"devices": [0, 1], "devices_per_job": 3}, "devices_per_job: 3 is more than the 2"),
        ({"devices": [0], "devices_per_job": 0}, "devices_per_job: must be an int >= 1, not 0"),
    ],
)
def test_bad_devices_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as error:
        ivory.create_client(tmp_path / "stores", **kwargs)
    assert str(error.value).startswith(message)
    assert not (tmp_path / "stores").exists()


SCRIPT = """
import json, sys, time
import ivory_hydra as ivory
client = ivory.create_client(sys.argv[1], storage=sys.argv[2], mlflow=False, devices=[0])
for run in client.create_task(sys.argv[3]).product(a=[1, 2, 3], verbose=0):
    start = time.time()
    time.sleep(0.3)
    print(json.dumps({"devices": run.devices, "start": start, "end": time.time()}), flush=True)
    run.report(1.0)
"""


@pytest.mark.slow
def test_two_processes_share_one_device_one_run_at_a_time(tmp_path):
    journal = str(tmp_path / "shared.journal")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(tmp_path / f"p{i}"), journal, f"e{i}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    lines = [line for out in outputs for line in out.splitlines() if line.startswith("{")]
    spans = sorted(map(json.loads, lines), key=lambda s: s["start"])
    assert len(spans) == 6 and all(s["devices"] == [0] for s in spans)
    for before, after in zip(spans, spans[1:], strict=False):
        assert after["start"] >= before["end"], (before, after)

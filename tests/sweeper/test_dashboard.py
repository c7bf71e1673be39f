"""optuna-dashboard shows a sweep: a real dashboard process on 127.0.0.1 reads the study."""

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import is_sweep_study, run_app

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_dashboard_shows_the_sweep_and_the_task_and_nothing_else(tmp_path):
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "a=1-3",
        "b=1e-3_1e-1:3.log",
        "model=small,large",
    )
    assert result.returncode == 0, result.output
    import ivory_hydra as ivory

    task = ivory.create_client(tmp_path, mlflow=False).create_task("app")  # the same storage
    for run in task.product(x=[1, 2], verbose=0):
        run.report(float(run.params["x"]))
    port = free_port()
    dashboard = Path(sys.executable).parent / "optuna-dashboard"
    proc = subprocess.Popen(
        [
            str(dashboard),
            f"sqlite:///{tmp_path}/optuna.db",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        summaries = get_json(base)["study_summaries"]
        # run and task numbers live in the ledger: no bookkeeping study beside them
        assert sorted(s["study_name"] for s in summaries)[1:] == ["app.task#1"]
        [study] = [s for s in summaries if is_sweep_study(s["study_name"])]
        detail = get_json(f"{base}/{study['study_id']}?after=0")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert len(detail["trials"]) == 18
    space = {p["name"]: p["distribution"] for p in detail["union_search_space"]}
    assert space["a"] == {"type": "IntDistribution", "low": 1, "high": 3, "step": 1, "log": False}
    assert space["b"]["type"] == "FloatDistribution" and space["b"]["log"] is True
    assert space["model"]["type"] == "CategoricalDistribution"
    trial = detail["trials"][0]
    assert trial["state"] == "Complete"
    attrs = {a["key"] for a in trial["user_attrs"]}
    assert {"overrides", "output_dir", "run_name"} <= attrs

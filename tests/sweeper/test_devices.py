"""End-to-end: a device per job, through real Hydra apps, launchers and workers.

The test app appends a record when each job starts and ends, with its pid, its
start and end times and the ``CUDA_VISIBLE_DEVICES`` it saw (this machine has
no GPU: a device is what that variable says). The checks read that record, the
trials, the MLflow runs and the ledger's device records.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from conftest import run_app, start_sweep
from convergence import records, storage_of
from mlflow.tracking import MlflowClient
from test_bad_input import assert_refused_and_nothing_written
from test_launchers import RAY_ENV, ray_dir, ray_launcher  # noqa: F401 - ray_dir: a fixture

from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.format import Tag, TrialAttr
from ivory_hydra.stores.ledger import ledger_for
from ivory_hydra.stores.optuna_storage import storage_url

pytestmark = pytest.mark.slow

JOBLIB = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=4")
LIVENESS = ("hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=6")


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def seen(ended: list[dict]) -> dict[int, tuple[int, ...]]:
    """The devices each job (by ``a``) saw."""
    return {e["a"]: tuple(int(d) for d in e["devices"].split(",")) for e in ended}


def check_assignments(
    ended: list[dict], pool: set[int], per_job: int, until: dict[int, float] | None = None
) -> int:
    """Every job saw ``per_job`` devices of the pool, and no two jobs that ran at the
    same time shared one (``until``: a killed job's pid and when it was killed).
    Returns the most jobs that ran at once."""
    until = until or {}
    spans = []
    for e in ended:
        devices = e["devices"].split(",") if e["devices"] else []
        assert len(devices) == per_job and len(set(devices)) == per_job, e
        assert {int(d) for d in devices} <= pool, e
        end = until.get(e["pid"], e["end"]) if e["event"] == "start" else e["end"]
        spans.append((e["start"], end, set(devices), e))
    for start, end, devices, e in spans:
        for other in spans:
            if other[3] is not e and other[0] < end and start < other[1]:
                assert not devices & other[2], f"jobs shared a device at once: {e} {other[3]}"
    return max(sum(s[0] <= span[0] < s[1] for s in spans) for span in spans)


def held_devices(url: str) -> dict:
    return DevicePool(ledger_for(url)).holders()


def only_study(url: str) -> optuna.Study:
    [summary] = optuna.get_all_study_summaries(storage_of(url))
    return optuna.load_study(study_name=summary.study_name, storage=storage_of(url))


def test_joblib_four_jobs_at_once_on_two_devices(tmp_path, mlflow_db):
    record = tmp_path / "jobs.jsonl"
    result = run_app(
        tmp_path, *JOBLIB, "hydra.sweeper.devices=[0,1]", "a=0-7", "sleep=1", f"record={record}"
    )
    assert result.returncode == 0, result.output
    note = "hydra.sweeper.devices=[0,1] (1 per job) runs 2 jobs at once: of "
    assert result.output.count(note + "hydra.launcher.n_jobs=4, the others wait") == 1
    ended = records(record)
    assert sorted(e["a"] for e in ended) == list(range(8))
    assert check_assignments(ended, {0, 1}, 1) == 2  # both devices busy at once, never more
    pids = {e["pid"] for e in ended}
    assert len(pids) >= 3  # loky's workers took turns on the devices
    assert result.output.count("waits for a free device") <= len(pids)  # once per process
    devices = seen(ended)
    url = storage_url(None, tmp_path)
    trials = only_study(url).trials
    assert {t.params["a"]: tuple(t.user_attrs[TrialAttr.DEVICES]) for t in trials} == devices
    client = MlflowClient(mlflow_db)
    runs = client.search_runs([client.get_experiment_by_name("app").experiment_id])
    by_trial = {int(r.data.tags[Tag.TRIAL_NUMBER]): r for r in runs if Tag.PARENT in r.data.tags}
    for trial in trials:
        tag = by_trial[trial.number].data.tags[Tag.DEVICES]
        assert tag == ",".join(map(str, devices[trial.params["a"]]))
    assert held_devices(url) == {}  # every device given back


def test_two_devices_per_job(tmp_path):
    record = tmp_path / "jobs.jsonl"
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        *JOBLIB,
        "hydra.sweeper.devices=[0,1,2,3]",
        "hydra.sweeper.devices_per_job=2",
        "a=0-5",
        "sleep=1",
        f"record={record}",
    )
    assert result.returncode == 0, result.output
    ended = records(record)
    assert sorted(e["a"] for e in ended) == list(range(6))
    assert check_assignments(ended, {0, 1, 2, 3}, 2) == 2
    trials = only_study(storage_url(None, tmp_path)).trials
    assert all(len(t.user_attrs[TrialAttr.DEVICES]) == 2 for t in trials)


def test_submitit_local_jobs_hold_their_devices(tmp_path):
    record = tmp_path / "jobs.jsonl"
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "hydra.sweeper.devices=[3,5]",
        "a=0-3",
        "sleep=1",
        f"record={record}",
    )
    assert result.returncode == 0, result.output
    ended = records(record)
    assert sorted(e["a"] for e in ended) == list(range(4))
    check_assignments(ended, {3, 5}, 1)


@pytest.mark.ray
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="hydra-ray-launcher is not installed",
)
def test_ray_workers_hold_their_devices(tmp_path, ray_dir):  # noqa: F811 - the fixture
    record = tmp_path / "jobs.jsonl"
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        *ray_launcher(ray_dir),
        "hydra.sweeper.devices=[0,1]",
        "a=0-3",
        "sleep=1",
        f"record={record}",
        env=RAY_ENV,
    )
    assert result.returncode == 0, result.output[-6000:]
    ended = records(record)
    assert sorted(e["a"] for e in ended) == list(range(4))
    check_assignments(ended, {0, 1}, 1)


def test_basic_launcher_sets_and_restores_the_variable(tmp_path):
    record = tmp_path / "jobs.jsonl"
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.devices=[2]",
        "a=0-2",
        f"record={record}",
        env={"CUDA_VISIBLE_DEVICES": "7"},  # the sweeper's own: each job sees its device
    )
    assert result.returncode == 0, result.output
    assert [e["devices"] for e in records(record)] == ["2", "2", "2"]


def test_auto_without_a_gpu_assigns_nothing_and_says_so_once(tmp_path):
    try:  # the gpu extra (the test extra installs it): NVML finds no GPU here
        import pynvml

        expected = "auto: NVML found no GPU"
        try:
            pynvml.nvmlInit()
            pynvml.nvmlShutdown()
            pytest.skip("this machine has NVML (a GPU driver)")
        except pynvml.NVMLError:
            pass
    except ImportError:
        expected = "auto: nvidia-ml-py is not installed (pip install 'ivory-hydra[gpu]')"
    record = tmp_path / "jobs.jsonl"
    result = run_app(
        tmp_path,
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.devices=auto",
        "a=0-1",
        f"record={record}",
    )
    assert result.returncode == 0, result.output
    said = [line for line in result.output.splitlines() if "hydra.sweeper.devices" in line]
    assert len(said) == 1 and expected in said[0], result.output
    assert said[0].endswith("no devices are assigned")
    assert [e["devices"] for e in records(record)] == [None, None]
    trials = only_study(storage_url(None, tmp_path)).trials
    assert not [t for t in trials if TrialAttr.DEVICES in t.user_attrs]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydra.sweeper.devices=[0,1,0]"], "hydra.sweeper.devices: device 0 is listed twice"),
        (["hydra.sweeper.devices=[0,-1]"], "hydra.sweeper.devices: -1 is not a device id"),
        (["hydra.sweeper.devices=[0,x]"], "hydra.sweeper.devices: 'x' is not a device id"),
        (["hydra.sweeper.devices=[0.5]"], "hydra.sweeper.devices: 0.5 is not a device id"),
        (["hydra.sweeper.devices=gpu"], "hydra.sweeper.devices: give a list of device ids"),
        (
            ["hydra.sweeper.devices=[0,1]", "hydra.sweeper.devices_per_job=3"],
            "hydra.sweeper.devices_per_job: 3 is more than the 2 devices in [0, 1]",
        ),
        (
            ["hydra.sweeper.devices=[0,1]", "hydra.sweeper.devices_per_job=0"],
            "hydra.sweeper.devices_per_job: must be an int >= 1, not 0",
        ),
        (
            ["hydra.sweeper.devices_per_job=-1"],
            "hydra.sweeper.devices_per_job: must be an int >= 1, not -1",
        ),
        (
            ["hydra.sweeper.devices=[0]", "+hydra.job.env_set.CUDA_VISIBLE_DEVICES=1"],
            "hydra.sweeper.devices: hydra.job.env_set.CUDA_VISIBLE_DEVICES is set too",
        ),
    ],
    ids=[
        "twice",
        "negative",
        "text",
        "float",
        "word",
        "per-job-3",
        "per-job-0",
        "per-job-neg",
        "env",
    ],
)
def test_bad_devices_are_refused_before_any_job(tmp_path, args, message):
    result = run_app(tmp_path, "a=1,2", *args)
    assert_refused_and_nothing_written(result, tmp_path)
    named = [line for line in result.stderr.splitlines() if "hydra.sweeper.devices" in line]
    assert len(named) == 1 and message in named[0], result.stderr


# ------------------------------------------------------------------ workers and kills


@pytest.fixture(params=["postgresql", "journal"])
def storage(request, tmp_path):
    if request.param == "journal":
        return str(tmp_path / "sweep.journal")
    from postgres_server import fresh_database

    return fresh_database(request.getfixturevalue("postgres_url"))


def test_three_workers_share_two_devices(tmp_path, storage, mlflow_db):
    record = tmp_path / "jobs.jsonl"
    args = (f"hydra.sweeper.storage={storage}", f"record={record}", *LIVENESS)
    args += ("hydra.sweeper.devices=[0,1]", "a=0-11", "sleep=0.5")
    workers = [start_sweep(tmp_path, f"w{i}", *args) for i in range(3)]
    codes = [w.wait(timeout=300) for w in workers]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(3)]
    assert codes == [0, 0, 0], logs
    ended = records(record)
    assert Counter(e["a"] for e in ended) == Counter(range(12))  # each once
    assert len({e["pid"] for e in ended}) >= 2
    assert check_assignments(ended, {0, 1}, 1) == 2
    assert any("waits for a free device" in log for log in logs)  # three workers, two devices
    assert held_devices(storage_url(storage)) == {}


def test_a_job_killed_holding_a_device_frees_it_and_the_rerun_completes(tmp_path, mlflow_db):
    """SIGKILL the loky worker that runs a job on the only device: the sweep stops; its
    device record stays with the dead process until the rerun finds it gone and takes it."""
    record = tmp_path / "jobs.jsonl"
    args = ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.devices=[0]")
    args += ("a=0-5", "sleep=1", f"record={record}", *LIVENESS)
    sweeper = start_sweep(tmp_path, "first", *args)
    deadline = time.monotonic() + 120
    while len(records(record, "start")) < 2:  # the second job holds the device
        assert time.monotonic() < deadline and sweeper.poll() is None, "no second job"
        time.sleep(0.02)
    victim = records(record, "start")[-1]
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.time()
    sweeper.wait(timeout=120)
    url = storage_url(None, tmp_path)
    rerun = start_sweep(tmp_path, "rerun", *args)
    assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()
    # the rerun (or a job of the first run that waited) found the dead holder and took over
    logs = (tmp_path / "first.log").read_text() + (tmp_path / "rerun.log").read_text()
    assert f"(pid {victim['pid']} on" in logs and "which is gone" in logs, logs
    ended = records(record)
    assert Counter(e["a"] for e in ended if e["a"] != victim["a"]) == Counter(
        a for a in range(6) if a != victim["a"]
    )
    assert victim["a"] in {e["a"] for e in ended}  # the killed job ran again and ended
    check_assignments([*ended, victim], {0}, 1, until={victim["pid"]: killed_at})
    assert held_devices(url) == {}
    trials = only_study(url).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["a"] for t in complete) == list(range(6))
    assert all(t.user_attrs[TrialAttr.DEVICES] == [0] for t in complete)


HOLD = """
import sys, time
from ivory_hydra.stores.devices import DevicePool
from ivory_hydra.stores.ledger import ledger_for
pool = DevicePool(ledger_for(sys.argv[1]))
taken = []
assert pool.take((0,), 1, pool.holder(run="elsewhere"), taken)
print("held", flush=True)
time.sleep(300)
"""


def test_a_job_waits_for_a_held_device_until_sigterm_stops_the_sweep(tmp_path):
    """Device 0 is held by another live process: the job waits (it never runs without
    it); SIGTERM stops the wait and the sweep; once the holder is gone, the rerun runs."""
    url = storage_url(None, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    record = tmp_path / "jobs.jsonl"
    args = ("hydra.sweeper.mlflow.enabled=false", "hydra.sweeper.devices=[0]", "a=0-1")
    args += (f"record={record}",)
    try:
        assert holder.stdout.readline().strip() == "held"
        sweeper = start_sweep(tmp_path, "first", *args)
        log = tmp_path / "first.log"
        deadline = time.monotonic() + 120
        while "waits for a free device" not in log.read_text():
            assert time.monotonic() < deadline and sweeper.poll() is None, log.read_text()
            time.sleep(0.05)
        time.sleep(1)  # still waiting a while later
        assert records(record, "start") == []
        sweeper.send_signal(signal.SIGTERM)
        assert sweeper.wait(timeout=60) == 143, log.read_text()
        [(_, record_held)] = held_devices(url).items()
        assert record_held["pid"] == holder.pid  # the holder's, untouched
        trials = only_study(url).trials  # the waiting job's and its batch's: failed
        assert {t.state.name for t in trials} == {"FAIL"}, [t.state for t in trials]
        assert trials[0].user_attrs["error"] == "Interrupted"
    finally:
        holder.kill()
        holder.wait()
    rerun = start_sweep(tmp_path, "rerun", *args)
    assert rerun.wait(timeout=120) == 0, (tmp_path / "rerun.log").read_text()
    assert sorted(e["a"] for e in records(record)) == [0, 1]
    assert [e["devices"] for e in records(record)] == ["0", "0"]
    assert held_devices(url) == {}


def test_a_worker_killed_holding_a_device_frees_it_for_the_others(tmp_path, mlflow_db):
    """Three workers (basic launcher: each runs its jobs itself) on a journal, two
    devices; SIGKILL one in the middle of a job: the others take its device over at
    once and run its jobs; no two jobs ever shared a device."""
    storage = str(tmp_path / "sweep.journal")
    record = tmp_path / "jobs.jsonl"
    args = (f"hydra.sweeper.storage={storage}", f"record={record}", *LIVENESS)
    args += ("hydra.sweeper.devices=[0,1]", "a=0-11", "sleep=0.5")
    workers = [start_sweep(tmp_path, f"w{i}", *args) for i in range(3)]
    deadline = time.monotonic() + 120
    killed = None
    while killed is None:
        assert time.monotonic() < deadline, "no worker ran two jobs"
        started = Counter(e["pid"] for e in records(record, "start"))
        ended = Counter(e["pid"] for e in records(record))
        busy = [w for w in workers if 0 < ended[w.pid] < started[w.pid]]
        if busy:
            killed = busy[0]
            killed.send_signal(signal.SIGKILL)
            killed_at = time.time()
        time.sleep(0.02)
    codes = {w.pid: w.wait(timeout=300) for w in workers}
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(3))
    assert codes.pop(killed.pid) == -signal.SIGKILL
    assert list(codes.values()) == [0, 0], logs
    ended = records(record)
    finished_there = {e["a"] for e in ended if e["pid"] == killed.pid}
    [victim] = [  # the job it was killed in
        e
        for e in records(record, "start")
        if e["pid"] == killed.pid and e["a"] not in finished_there
    ]
    assert Counter(e["a"] for e in ended) == Counter(range(12))  # its job ran again elsewhere
    check_assignments([*ended, victim], {0, 1}, 1, until={killed.pid: killed_at})
    assert f"(pid {killed.pid} on" in logs and "which is gone: taken over" in logs
    assert held_devices(storage_url(storage)) == {}

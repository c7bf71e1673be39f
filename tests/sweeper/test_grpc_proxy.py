"""Sweeps through a real gRPC storage proxy: ``hydra.sweeper.storage=grpc://HOST:PORT``.

A real ``python -m ivory_hydra.proxy`` process in front of SQLite here (every
mode, resume, the task API, a dry run, a kill, a restart of the proxy), and
Optuna's own bare proxy in front of PostgreSQL with three workers. Several
workers through ``ivory_hydra.proxy`` in front of PostgreSQL, one of them
killed, run in ``test_workers.py`` and ``test_recovery.py``, whose shared
storages include the proxy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from conftest import APPS, run_app
from convergence import check_converged, only_study, records, storage_of
from grpc_proxy import start_proxy
from test_bad_input import assert_refused_and_nothing_written, free_closed_port

import ivory_hydra as ivory
from ivory_hydra.stores.optuna_storage import storage_url
from ivory_hydra.stores.study_records import RECORDS_STUDY

pytestmark = pytest.mark.slow


@pytest.fixture
def database(tmp_path):
    return storage_url(None, tmp_path / "db")


@pytest.fixture
def proxy(database):
    with start_proxy(database) as proxy:
        yield proxy


def states(url: str) -> Counter:
    return Counter(t.state.name for t in only_study(url).trials)


@pytest.mark.parametrize(
    "args, jobs",
    [
        (["a=0-3", "b=0.0,0.5"], 8),
        (["hydra.sweeper.mode=chain", "a=0-3", "b=0.0,0.5"], 6),
        (["hydra.sweeper.mode=optimize", "hydra.sweeper.n_trials=5", "a=0_4", "b=0.0,0.5"], 5),
        (["a=0-2", "b=0.0,0.5,1.0", "hydra.sweeper.repeat=[b]"], 9),
    ],
    ids=["product", "chain", "optimize", "repeats"],
)
def test_every_mode_runs_through_the_proxy(sweep, proxy, database, args, jobs):
    result = sweep(f"hydra.sweeper.storage={proxy.url}", *args)
    assert result.returncode == 0, result.output
    assert len(result.run_lines) == jobs
    trials = only_study(proxy.url).trials
    assert {t.state.name for t in trials} == {"COMPLETE"}
    assert len(trials) == (3 if "hydra.sweeper.repeat=[b]" in args else jobs)
    # one study in the list (the records are ivory's own tables), read by Optuna directly too
    assert [s.study_name for s in storage_of(proxy.url).get_all_studies()] == [
        only_study(database).study_name
    ]
    calls = proxy.calls()
    assert calls["LedgerAdd"] > 0 and calls["LedgerCompareAndSet"] > 0 and calls["BeatsWrite"] > 0


def test_a_sweep_resumes_through_the_proxy(sweep, proxy):
    args = (f"hydra.sweeper.storage={proxy.url}", "a=1-4", "b=0,1")
    first = sweep(*args, "fail_at=4")
    assert first.returncode == 1 and len(first.run_lines) == 8
    second = sweep(*args, "fail_at=4")  # only the failed jobs again, with the next numbers
    assert second.run_lines == ["[run#8] fail_at=4 a=4 b=0", "[run#9] fail_at=4 a=4 b=1"]
    third = sweep(*args, "fail_at=4")
    assert [line.split()[0] for line in third.run_lines] == ["[run#10]", "[run#11]"]
    assert [t.number for t in only_study(proxy.url).trials] == list(range(12))


def test_the_task_api_takes_a_proxy(tmp_path, proxy):
    client = ivory.create_client(tmp_path / "examples", storage=proxy.url, mlflow=False)
    task = client.create_task("torch")
    names = [run.name for run in task.product(a=range(3), verbose=0) if not run.report(1.0)]
    assert task.name == "task#0" and names == ["run#0", "run#1", "run#2"]
    assert client.create_task("torch").name == "task#1"  # numbers kept by the proxy's ledger


def test_a_dry_run_through_the_proxy_writes_nothing(sweep, proxy, database):
    result = sweep(f"hydra.sweeper.storage={proxy.url}", "a=0-3", "hydra.sweeper.dry_run=true")
    assert result.returncode == 0, result.output
    assert "4 jobs" in result.output
    assert storage_of(proxy.url).get_all_studies() == []
    assert not proxy.calls().get("LedgerAdd")


def test_a_worker_killed_mid_sweep_is_recovered_by_the_rerun(tmp_path, proxy, mlflow_template):
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    record = tmp_path / "jobs.jsonl"
    args = [f"hydra.sweeper.storage={proxy.url}", f"record={record}", "a=0-5", "sleep=0.5"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with open(tmp_path / "w0.log", "w") as out:
        worker = subprocess.Popen(
            [sys.executable, str(APPS / "sweep/app.py"), "-m", *args, "hydra.sweep.dir=w0"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120
    while len(records(record)) < 2 or len(records(record, "start")) < 3:
        assert time.monotonic() < deadline and worker.poll() is None, "no third job started"
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    rerun = run_app(tmp_path, *args, "hydra.sweep.dir=w1")
    assert rerun.returncode == 0, rerun.output
    check_converged(proxy.url, f"sqlite:///{tmp_path}/mlflow.db", record, range(6), {worker.pid})
    assert states(proxy.url)["FAIL"] == 1  # the killed job's first trial


def test_a_proxy_restarted_mid_sweep_is_waited_out(tmp_path, database):
    """The proxy stops for two seconds and starts again on its port: the sweep goes on.

    Every call the stop cut off is sent again (a ledger write with its token, applied
    once). Should one of Optuna's own writes fail on its second sending, the sweep
    stops with one line, and the same command resumes it."""
    record = tmp_path / "jobs.jsonl"
    args = [f"record={record}", "a=0-9", "sleep=0.3", "hydra.sweeper.mlflow.enabled=false"]
    with start_proxy(database) as first:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(tmp_path / "w0.log", "w") as out:
            worker = subprocess.Popen(
                [sys.executable, str(APPS / "sweep/app.py"), "-m", *args]
                + [f"hydra.sweeper.storage={first.url}"],
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 120
        while len(records(record)) < 3:
            assert time.monotonic() < deadline and worker.poll() is None, "no third job ended"
            time.sleep(0.02)
    time.sleep(2)  # the proxy is gone
    port = int(first.url.rpartition(":")[2])
    with start_proxy(database, port=port):
        code = worker.wait(timeout=180)
        log = (tmp_path / "w0.log").read_text()
        if code != 0:  # a write in flight when the proxy stopped
            assert "run the same command again to resume once the proxy is back" in log, log
            again = subprocess.run(
                [sys.executable, str(APPS / "sweep/app.py"), "-m", *args]
                + [f"hydra.sweeper.storage={first.url}"],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                env=env,
                timeout=180,
            )
            assert again.returncode == 0, again.stdout + again.stderr
    ended = Counter(e["a"] for e in records(record))
    if code == 0:
        assert ended == Counter(range(10))
    else:  # a job whose outcome the stop cut off runs again: unfinished jobs do
        assert set(ended) == set(range(10)) and sum(ended.values()) <= 11, ended
    assert states(database) == Counter(COMPLETE=10)


def test_three_workers_share_a_sweep_through_optunas_bare_proxy(
    tmp_path, postgres_url, mlflow_template
):
    """Optuna's own run_grpc_proxy_server in front of PostgreSQL: the records go to a
    bookkeeping study; one worker killed, every job once, the list shows both studies."""
    from postgres_server import fresh_database
    from test_workers import run_workers

    shutil.copy(mlflow_template, tmp_path.parent / "mlflow-template.db")
    with start_proxy(fresh_database(postgres_url), bare=True) as bare:
        procs, codes, logs, record, killed = run_workers(
            tmp_path, bare.url, "a=0-14", "sleep=0.5", kill_one=signal.SIGKILL
        )
        assert killed is not None and killed.returncode == -signal.SIGKILL
        assert sorted(c for p, c in zip(procs, codes, strict=True) if p is not killed) == [0, 0]
        assert Counter(e["a"] for e in records(record)) == Counter(range(15))  # once each
        for log in logs:
            assert log.count("is Optuna's own proxy: ivory-hydra keeps its records") == 1
        storage = storage_of(bare.url)
        studies = {s.study_name for s in storage.get_all_studies()} - {RECORDS_STUDY}
        [name] = studies
        trials = optuna.load_study(study_name=name, storage=storage).trials
    assert not [t.number for t in trials if not t.state.is_finished()]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["a"] for t in complete) == list(range(15))
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert [t.user_attrs["error"] for t in trials if t.state.name == "FAIL"] == ["Interrupted"]


@pytest.mark.parametrize("kind", ["no-port", "nothing-listening"])
def test_a_proxy_url_that_cannot_work_is_named_within_seconds(tmp_path, kind):
    url = "grpc://127.0.0.1" if kind == "no-port" else f"grpc://127.0.0.1:{free_closed_port()}"
    reason = (
        "grpc://127.0.0.1 has no port: give grpc://HOST:PORT"
        if kind == "no-port"
        else f"no gRPC server answers at {url[len('grpc://') :]} within 5 s"
    )
    started = time.monotonic()
    result = run_app(tmp_path, f"hydra.sweeper.storage={url}", "a=1,2", timeout=60)
    assert time.monotonic() - started < 20
    assert_refused_and_nothing_written(result, tmp_path)
    [line] = [x for x in result.output.splitlines() if "hydra.sweeper.storage" in x]
    assert line.startswith(f"hydra.sweeper.storage={url}: ") and line.endswith(reason), line

"""The MLflow mirror against real MLflow stores: SQLite files and a real server."""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the package may not be installed
    sys.path.insert(0, str(ROOT))

from ivory_hydra.core.redact import redact_url  # noqa: E402
from ivory_hydra.job import active_run  # noqa: E402
from ivory_hydra.job.active_run import activate, deactivate  # noqa: E402
from ivory_hydra.stores import mlflow_client  # noqa: E402
from ivory_hydra.stores.format import Tag  # noqa: E402
from ivory_hydra.stores.mlflow_client import safe_param_key  # noqa: E402
from ivory_hydra.stores.mlflow_mirror import ChildSpec, MlflowMirror  # noqa: E402

# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for this module (creating one costs seconds)."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowMirror(f"sqlite:///{path}", "warmup").experiment_id()
    return f"sqlite:///{path}"


@pytest.fixture
def fluent(monkeypatch):
    """MLflow's fluent API; its global state is restored after the test."""
    import mlflow
    import mlflow.tracking.fluent as fluent_module
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setattr(utils, "_tracking_uri", utils._tracking_uri)
    monkeypatch.setattr(fluent_module, "_active_experiment_id", fluent_module._active_experiment_id)
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID"):
        old = os.environ.get(var)
        monkeypatch.setenv(var, old or "placeholder")  # recorded for restoring
        if old is None:
            monkeypatch.delenv(var)
    yield mlflow
    while mlflow.active_run() is not None:
        mlflow.end_run()
    active_run._job_state.current = None


def _status(failed: bool) -> str:
    return "FAILED" if failed else "FINISHED"


def _children(client, parent: str) -> dict[str, str]:
    run = client.get_run(parent)
    found = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'"
    )
    return {r.info.run_name: r.info.run_id for r in found}


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _hydra_dir(base: Path) -> Path:
    folder = base / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text("lr: 0.1\n")
    (folder / "overrides.yaml").write_text("- lr=0.1\n")
    return folder


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out |= _artifact_paths(client, run_id, info.path)
        else:
            out.add(info.path)
    return out


# ------------------------------------------------------------- pure helpers


def test_import_does_not_import_mlflow():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    code = (
        "import sys, ivory_hydra.stores.mlflow_mirror, ivory_hydra.job.active_run, "
        "ivory_hydra.job.hydra_task, ivory_hydra.engine.engine, ivory_hydra.sweeper.impl; "
        "assert 'mlflow' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql+psycopg2://u:s3cr3t@h:5432/db",
            "postgresql+psycopg2://u:***@h:5432/db",
        ),
        ("http://admin:pw@127.0.0.1:5000", "http://admin:***@127.0.0.1:5000"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("just text", "just text"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected
    assert "secret" not in redact_url(url) and "s3cr3t" not in redact_url(url)


def test_safe_param_key():
    assert safe_param_key("+db.port") == "db.port"
    assert safe_param_key("++a.b") == "a.b"
    assert safe_param_key("~c") == "c"
    assert safe_param_key("x[0]=y") == "x_0__y"
    assert safe_param_key("k" * 300) == "k" * 250


def test_tracking_uri_resolution(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MlflowMirror(None, "e").tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert MlflowMirror("sqlite:///sub/m.db", "e").tracking_uri == (
        f"sqlite:///{tmp_path}/sub/m.db"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999/")
    assert MlflowMirror(None, "e").tracking_uri == "http://127.0.0.1:5999"


def test_ui_command(tmp_path):
    db = tmp_path / "mlflow.db"
    assert MlflowMirror(f"sqlite:///{db}", "e").ui_command() == (
        f"mlflow ui --backend-store-uri sqlite:///{db}"
    )
    assert MlflowMirror("http://127.0.0.1:5000", "e").ui_command() == ("open http://127.0.0.1:5000")
    cmd = MlflowMirror("postgresql://u:pw@db/mlflow", "e").ui_command()
    assert cmd == "mlflow ui --backend-store-uri 'postgresql://u:***@db/mlflow'"


# ---------------------------------------------------------- sqlite: sweep side


def test_parent_children_roundtrip(store, tmp_path, fluent):
    mir = MlflowMirror(store, "roundtrip")
    client = _client(mir.tracking_uri)
    parent = mir.open_parent("task#0", {"ivory.mode": "product"})
    prun = client.get_run(parent)
    assert prun.info.run_name == "task#0" and prun.info.status == "RUNNING"
    assert prun.data.tags["ivory.mode"] == "product"
    assert "mlflow.parentRunId" not in prun.data.tags
    experiment = client.get_experiment(prun.info.experiment_id)
    assert experiment.name == "roundtrip"
    # artifacts of a local SQLite store live next to the database file
    db_dir = Path(mir.tracking_uri[len("sqlite:///") :]).parent
    assert experiment.artifact_location.startswith((db_dir / "mlruns").as_uri())

    hydra_dir = _hydra_dir(tmp_path / "job")
    ids = {}
    for i in range(4):
        spec = ChildSpec(
            f"run#{i}",
            {
                "model": "vit",
                "+db.port": 5432,
                "optim.lr": 0.1 * (i + 1),
                "~callbacks": None,
                "long": "x" * 7000,
            },
            {
                "ivory.overrides": f"lr={0.1 * (i + 1)} model=vit",
                "ivory.trial_number": str(i),
            },
        )
        ids[i] = mir.create_child(parent, spec)
        run = client.get_run(ids[i])
        assert run.info.status == "RUNNING" and run.info.run_name == f"run#{i}"
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["ivory.trial_number"] == str(i)
        params = run.data.params
        assert params["model"] == "vit" and params["db.port"] == "5432"
        assert params["callbacks"] == "None"
        assert float(params["optim.lr"]) == pytest.approx(0.1 * (i + 1))
        assert len(params["long"]) == 6000 and params["long"].endswith("...")

        failed = i == 2
        activate(mir.tracking_uri, ids[i])
        assert fluent.active_run().info.run_id == ids[i]
        for step, loss in enumerate([0.9, 0.5, 0.3]):
            fluent.log_metric("loss", loss + i, step=step)
        error = "Traceback (most recent call last):\nValueError: boom"
        deactivate(_status(failed), error=error if failed else None, artifact_dirs=[hydra_dir])
        assert fluent.active_run() is None
        assert mir.latest_metric(ids[i], "loss") == pytest.approx(0.3 + i)
        assert mir.latest_metric(ids[i], "missing") is None
        mir.finish_child(
            ids[i],
            _status(failed),
            metrics={"score": 0.3 + i, "nan": math.nan, "inf": math.inf},
            tags={"ivory.state": "fail" if failed else "complete"},
        )

    for i, run_id in ids.items():
        run = client.get_run(run_id)
        assert run.info.status == ("FAILED" if i == 2 else "FINISHED")
        assert run.info.end_time is not None
        assert run.data.metrics["score"] == pytest.approx(0.3 + i)
        assert "nan" not in run.data.metrics and "inf" not in run.data.metrics
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == [0, 1, 2]
        files = _artifact_paths(client, run_id)
        assert {".hydra/config.yaml", ".hydra/overrides.yaml"} <= files
        if i == 2:
            assert "error.txt" in files
            assert run.data.tags["ivory.error"].endswith("ValueError: boom")
        else:
            assert "error.txt" not in files and "ivory.error" not in run.data.tags

    assert _children(client, parent) == {f"run#{i}": ids[i] for i in ids}


def test_many_params_and_tags_are_chunked(store):
    mir = MlflowMirror(store, "chunked")
    parent = mir.open_parent("task#0", {})
    params = {f"+p{i}": i for i in range(250)}
    tags = {f"t{i}": str(i) for i in range(130)}
    child = mir.create_child(parent, ChildSpec("run#0", params, tags))
    run = _client(mir.tracking_uri).get_run(child)
    assert len(run.data.params) == 250 and run.data.params["p249"] == "249"
    assert all(run.data.tags[f"t{i}"] == str(i) for i in range(130))


def test_colliding_param_keys_are_kept(store):
    mir = MlflowMirror(store, "collide")
    parent = mir.open_parent("task#0", {})
    child = mir.create_child(parent, ChildSpec("run#0", {"a.b": 1, "+a.b": 2}, {}))
    params = _client(mir.tracking_uri).get_run(child).data.params
    assert params == {"a.b": "1", "a.b_1": "2"}


def test_resume_reuses_parent(store):
    mir = MlflowMirror(store, "resume")
    client = _client(mir.tracking_uri)
    parent = mir.open_parent("task#3", {"ivory.sweep": "1"})
    a = mir.create_child(parent, ChildSpec("run#0", {"lr": 0.1}, {}))
    b = mir.create_child(parent, ChildSpec("run#1", {"lr": 0.2}, {}))
    mir.finish_child(a, _status(False), metrics={"score": 1.0})
    mir.close_parent(parent, status="FAILED")
    assert client.get_run(parent).info.status == "FAILED"

    again = MlflowMirror(store, "resume")  # a new sweep process
    assert again.open_parent("task#3", {"ivory.resumed": "1"}, run_id=parent) == parent
    run = client.get_run(parent)
    assert run.info.status == "RUNNING"
    assert run.data.tags["ivory.resumed"] == "1" and run.data.tags["ivory.sweep"] == "1"
    assert _children(client, parent) == {"run#0": a, "run#1": b}
    assert len(client.search_runs([run.info.experiment_id])) == 3  # nothing new

    # a parent id the store does not know (e.g. the database was removed)
    fresh = again.open_parent("task#3", {}, run_id="0" * 32)
    assert fresh != parent and client.get_run(fresh).info.run_name == "task#3"


def test_close_parent_records_best(store, tmp_path):
    mir = MlflowMirror(store, "close")
    client = _client(mir.tracking_uri)
    parent = mir.open_parent("task#0", {})
    results = tmp_path / "results.yaml"
    results.write_text("best: {lr: 0.1}\n")
    mir.close_parent(
        parent,
        params={"lr": 0.1, "+model": "vit"},
        metrics={"best_score": 0.25},
        tags={"ivory.best_run": "run#1"},
        artifacts=[results, tmp_path / "missing.yaml"],
    )
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.tags["ivory.best.lr"] == "0.1"
    assert run.data.tags["ivory.best.model"] == "vit"
    assert run.data.tags["ivory.best_run"] == "run#1"
    assert run.data.metrics["best_score"] == 0.25
    assert "results.yaml" in _artifact_paths(client, parent)

    # a resumed sweep may find another best: no "param changed" error
    assert mir.open_parent("task#0", {}, run_id=parent) == parent
    mir.close_parent(parent, params={"lr": 0.01}, metrics={"best_score": 0.125})
    run = client.get_run(parent)
    assert run.data.tags["ivory.best.lr"] == "0.01"
    assert run.data.metrics["best_score"] == 0.125


def test_experiment_creation_is_race_safe(store):
    name = f"race-{time.time_ns()}"
    mirrors = [MlflowMirror(store, name) for _ in range(4)]
    barrier = threading.Barrier(len(mirrors))

    def create(mir):
        barrier.wait()
        return mir.experiment_id()

    with ThreadPoolExecutor(len(mirrors)) as pool:
        ids = list(pool.map(create, mirrors))
    assert len(set(ids)) == 1


def test_waits_for_a_locked_database(store):
    """A writer holding the lock for a while delays, but does not fail, a child."""
    mir = MlflowMirror(store, "locked")
    parent = mir.open_parent("task#0", {})
    db = sqlite3.connect(mir.tracking_uri[len("sqlite:///") :], timeout=30, check_same_thread=False)
    db.execute("BEGIN EXCLUSIVE")
    released = threading.Timer(1.0, db.commit)
    released.start()
    try:
        start = time.perf_counter()
        child = mir.create_child(parent, ChildSpec("run#0", {"a": 1}, {}))
        assert time.perf_counter() - start >= 0.5
    finally:
        released.join()
        db.close()
    assert _client(mir.tracking_uri).get_run(child).data.params == {"a": "1"}


# ------------------------------------------------------------ job side, in-process


def test_activate_child_in_process(store, tmp_path, fluent):
    mir = MlflowMirror(store, "activate")
    parent = mir.open_parent("task#0", {})
    child = mir.create_child(parent, ChildSpec("run#0", {"lr": 0.1}, {}))
    activate(mir.tracking_uri, child)
    assert fluent.active_run().info.run_id == child
    fluent.log_metric("acc", 0.9)
    fluent.log_param("seed", 7)
    deactivate(_status(False))
    run = _client(mir.tracking_uri).get_run(child)
    assert run.data.metrics["acc"] == 0.9 and run.data.params["seed"] == "7"
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent


def test_leftovers_and_robust_deactivate(store, tmp_path, fluent, caplog):
    mir = MlflowMirror(store, "leftovers")
    client = _client(mir.tracking_uri)
    parent = mir.open_parent("task#0", {})
    first, second, third = (
        mir.create_child(parent, ChildSpec(f"run#{i}", {}, {})) for i in range(3)
    )
    # a job that never deactivated (crashed) leaves its run active in the worker
    activate(mir.tracking_uri, first)
    activate(mir.tracking_uri, second)
    assert fluent.active_run().info.run_id == second
    assert client.get_run(first).info.status == "KILLED"

    # user code opens a nested run and forgets it; a missing artifact dir
    fluent.start_run(run_name="user-nested", nested=True)
    deactivate(_status(False), artifact_dirs=[tmp_path / "nope"])
    assert fluent.active_run() is None
    assert client.get_run(second).info.status == "FINISHED"

    # user code ends the run itself
    activate(mir.tracking_uri, third)
    fluent.end_run()
    deactivate(_status(True), error="x" * 5000)
    run = client.get_run(third)
    assert run.info.status == "FAILED"
    assert len(run.data.tags["ivory.error"]) == mlflow_client.MAX_ERROR_TAG_LENGTH

    # a second deactivate (or one without activate) does nothing
    assert deactivate(_status(False)) is False

    # user code switched the active experiment in this worker
    other = MlflowMirror(store, "leftovers-other")
    other_parent = other.open_parent("task#0", {})
    fluent.set_experiment(experiment_id=other.experiment_id())
    fourth = mir.create_child(parent, ChildSpec("run#3", {}, {}))
    activate(mir.tracking_uri, fourth)
    assert fluent.active_run().info.run_id == fourth
    deactivate(_status(False))
    assert other_parent


def test_cost_per_child(store, tmp_path, fluent):
    """create_child + activate + deactivate + finish on SQLite (printed with -s)."""
    mir = MlflowMirror(store, "cost")
    parent = mir.open_parent("task#0", {})
    spec = ChildSpec("run#0", {"lr": 0.1, "+model": "vit", "fold": 1}, {"ivory.x": "y"})
    mir.finish_child(mir.create_child(parent, spec), _status(False))  # warm-up
    n = 20
    start = time.perf_counter()
    for i in range(n):
        child = mir.create_child(parent, ChildSpec(f"run#{i}", spec.params, spec.tags))
        activate(mir.tracking_uri, child)
        deactivate(_status(False))
        mir.finish_child(child, _status(False), metrics={"score": 0.5})
    per_child = (time.perf_counter() - start) / n
    print(f"\nMLflow mirror on SQLite: {per_child * 1000:.1f} ms per child run")
    assert per_child < 2.0  # generous: shared CI machines are slow


# --------------------------------------------------- concurrency: real processes

_BARRIER = None


def _init_worker(barrier) -> None:
    global _BARRIER
    _BARRIER = barrier


def _job_worker(tracking_uri: str, run_ids: list[str], workdir: str) -> dict:
    """Act as a launcher worker: activate, log, upload .hydra, deactivate."""
    locked = []

    class LockWatch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            exc = record.exc_info[1] if record.exc_info else None
            text = f"{record.getMessage()} {exc or ''}"
            if "locked" in text.lower():
                locked.append(text[:200])

    logging.getLogger().addHandler(LockWatch())
    import mlflow

    _client(tracking_uri).search_experiments(max_results=1)  # open the store
    _BARRIER.wait(timeout=120)
    start = time.time()
    errors = []
    for run_id in run_ids:
        job_dir = Path(workdir) / run_id
        hydra_dir = _hydra_dir(job_dir)
        try:
            activate(tracking_uri, run_id)
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metric("acc", 0.5)
            mlflow.log_param("pid", os.getpid())
        except Exception as exc:  # must not happen: reported to the test
            errors.append(repr(exc))
        deactivate(_status(False), artifact_dirs=[hydra_dir])
    return {"start": start, "end": time.time(), "errors": errors, "locked": locked}


def _check_children(tracking_uri: str, parent: str, ids: list[str]) -> None:
    client = _client(tracking_uri)
    for run_id in ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED", run_id
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.metrics["loss"] == pytest.approx(0.2)
        assert run.data.metrics["acc"] == 0.5
        assert len(client.get_metric_history(run_id, "loss")) == 5
        assert run.data.params["lr"] and run.data.params["pid"]
        assert ".hydra/config.yaml" in _artifact_paths(client, run_id)


@pytest.mark.slow
def test_concurrent_workers_share_sqlite(tmp_path):
    """40 children, 4 spawned worker processes logging at once to one SQLite file."""
    mir = MlflowMirror(f"sqlite:///{tmp_path}/mlflow.db", "concurrent")
    parent = mir.open_parent("task#0", {})
    ids = [
        mir.create_child(parent, ChildSpec(f"run#{i}", {"lr": i / 100, "+seed": i}, {}))
        for i in range(40)
    ]
    n_workers = 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_workers)
    with ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as pool:
        futures = [
            pool.submit(_job_worker, mir.tracking_uri, ids[k::n_workers], str(tmp_path))
            for k in range(n_workers)
        ]
        results = [f.result(timeout=600) for f in futures]

    assert [r["errors"] for r in results] == [[]] * n_workers
    assert [r["locked"] for r in results] == [[]] * n_workers
    # the workers really ran at the same time
    assert max(r["start"] for r in results) < min(r["end"] for r in results)
    busy = max(r["end"] for r in results) - min(r["start"] for r in results)
    print(f"\n4 workers x 10 children on one SQLite file: {busy:.1f} s of logging")
    for run_id in ids:
        mir.finish_child(run_id, _status(False), metrics={"score": 0.2})
    _check_children(mir.tracking_uri, parent, ids)
    assert _children(_client(mir.tracking_uri), parent) == {f"run#{i}": ids[i] for i in range(40)}


# ------------------------------------------------------------ a real server


@pytest.mark.slow
def test_against_mlflow_server(mlflow_server_url, tmp_path, fluent):
    mir = MlflowMirror(mlflow_server_url, "served")
    assert mir.ui_command() == f"open {mlflow_server_url}"
    client = _client(mlflow_server_url)
    parent = mir.open_parent("task#0", {"ivory.mode": "chain"})
    hydra_dir = _hydra_dir(tmp_path / "job")
    ids = []
    for i in range(3):
        child = mir.create_child(parent, ChildSpec(f"run#{i}", {"+lr": i}, {"k": "v"}))
        ids.append(child)
        activate(mir.tracking_uri, child)
        assert fluent.active_run().info.run_id == child
        fluent.log_metric("acc", 0.1 * i)
        fluent.log_metric("acc", 0.5 + i, step=1)
        deactivate(_status(i == 1), error="boom" if i == 1 else None, artifact_dirs=[hydra_dir])
        assert mir.latest_metric(child, "acc") == pytest.approx(0.5 + i)
        mir.finish_child(child, _status(i == 1), metrics={"score": float(i)})
    mir.close_parent(parent, params={"lr": 2}, metrics={"best_score": 2.0})

    for i, child in enumerate(ids):
        run = client.get_run(child)
        assert run.info.status == ("FAILED" if i == 1 else "FINISHED")
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.params == {"lr": str(i)}
        assert run.data.metrics["score"] == float(i)
        files = _artifact_paths(client, child)
        assert ".hydra/config.yaml" in files
        assert ("error.txt" in files) == (i == 1)
    prun = client.get_run(parent)
    assert prun.info.status == "FINISHED" and prun.data.tags["ivory.best.lr"] == "2"
    assert _children(client, parent) == {f"run#{i}": c for i, c in enumerate(ids)}


def test_a_parent_a_killed_worker_never_shared_is_deleted_and_no_other(store):
    """Workers each make a parent run and share it by compare-and-set; one killed in
    between leaves its parent behind. The closer deletes it, and only it."""
    mir = MlflowMirror(store, "strays")
    client = _client(mir.tracking_uri)
    tags = {Tag.STUDY_NAME: "s"}
    standing = mir.open_parent("task#0", tags)
    stray = mir.open_parent("task#0", tags)  # its worker died before sharing it
    holding = mir.open_parent("task#0", tags)  # holds a run: never deleted
    other_study = mir.open_parent("task#1", {Tag.STUDY_NAME: "t"})
    mir.create_child(standing, ChildSpec("run#0", {"a": 1}, {**tags, Tag.TRIAL_NUMBER: "0"}))
    mir.create_child(holding, ChildSpec("run#1", {"a": 2}, {**tags, Tag.TRIAL_NUMBER: "1"}))
    mir.delete_stray_parents(standing, "s")
    assert client.get_run(stray).info.lifecycle_stage == "deleted"
    for kept in (standing, holding, other_study):
        assert client.get_run(kept).info.lifecycle_stage == "active"
    assert not mir.behind


def test_reads_and_deletes_of_a_store_gone_away_never_stop_the_sweep(monkeypatch):
    """Against a tracking server that is gone, the reads and deletes that opening and
    closing a sweep make return nothing and mark the mirror behind: the rerun mends."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    calls = {
        "find_parent": lambda mir: mir.find_parent("s"),
        "children": lambda mir: mir.children("0" * 32, "s"),
        "delete_runs": lambda mir: mir.delete_runs(["0" * 32]),
        "delete_stray_parents": lambda mir: mir.delete_stray_parents("0" * 32, "s"),
    }
    for name, call in calls.items():
        mir = MlflowMirror(f"http://127.0.0.1:{port}", "gone")
        assert call(mir) is None, name
        assert mir.behind, name

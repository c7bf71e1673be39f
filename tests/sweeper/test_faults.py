"""Faults: the sweeper killed or stopped at any point, and one sweep started twice.

The test app runs in subprocesses, each test in a fresh folder with its own
stores. Every job appends a ``start`` and an ``end`` record to a file: the app's
own account of what ran, independent of what ivory-hydra stored. A fault is a
signal to the sweeper's process only (never to its process group): SIGKILL,
after which nothing of the sweeper runs, or SIGTERM, which it handles like
Ctrl-C (exit code 143). Running the same command again must then finish the
sweep, each job run exactly once as the records, Optuna and MLflow tell, and no
process left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna
import pytest
from conftest import APPS, is_sweep_study, run_app
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from processes import (
    assert_processes_end,
    children_of,
    cmdline,
    cpu_seconds,
    is_alive,
    still_alive,
)

from ivory_hydra.engine.engine import DEFAULT_BATCH_LIMIT

pytestmark = pytest.mark.slow

APP = APPS / "sweep" / "app.py"
LAUNCHERS = {"basic": (), "joblib": ("hydra/launcher=joblib", "hydra.launcher.n_jobs=2")}
MLFLOW_OFF = "hydra.sweeper.mlflow.enabled=false"
POLL = 0.1  # seconds between two looks at a condition
PENALTY = {"small": 0.5, "large": 0.0, "huge": 0.0}

# A one-batch product: a=0..3 at b=0 (model=small); each job sleeps 1 s.
PRODUCT = ("a=0-3", "sleep=1")
PRODUCT_JOBS = Counter((a, 0.0, "small") for a in range(4))
# A chain: step 0 runs a=1..3 at b=0; step 1 runs b=0,1 at the winner a=2, so
# a=2 b=0 runs once in each step.
CHAIN = ("hydra.sweeper.mode=chain", "a=1-3", "b=0,1", "sleep=0.5")
CHAIN_JOBS = Counter(
    {(1, 0.0, "small"): 1, (2, 0.0, "small"): 2, (3, 0.0, "small"): 1, (2, 1.0, "small"): 1}
)


class BugShown(AssertionError):
    """A regression: a fault this suite once found (see "regressions" below) is back."""


# ---------------------------------------------------------------- the app's records


def score(a: int, b: float = 0.0, model: str = "small") -> float:
    """The score the test app returns for a job."""
    return (a - 2) ** 2 + b + PENALTY[model]


def read_records(path: Path, event: str | None = None) -> list[dict]:
    """The app's records in the order they were written (a line being written is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event is None or record["event"] == event:
            records.append(record)
    return records


def job_of(record: dict) -> tuple:
    """What identifies a job in the records: its (a, b, model)."""
    return record["a"], float(record["b"]), record["model"]


def settled(records: Sequence[dict]) -> list[dict]:
    """The ``end`` records of jobs whose outcome is surely stored.

    A job stores its outcome after the app wrote ``end``; its process starts
    its next job only after that, so an ``end`` followed by a ``start`` from
    the same pid is a job that finished in both stores.
    """
    done, pending = [], {}
    for record in records:
        if record["event"] == "end":
            pending[record["pid"]] = record
        elif record["pid"] in pending:
            done.append(pending.pop(record["pid"]))
    return done


def asleep_in_jobs(path: Path, sleep: float) -> bool:
    """True once a job ended and every process that ran a job is asleep in its next one.

    Each has at least 0.4 s of its ``sleep`` to go, so a signal sent now lands
    while jobs run. A process starts its next job only after the previous one
    stored its outcome in both stores, so no job is halfway through storing
    its outcome (that moment is the subject of
    :func:`test_a_job_killed_while_it_ends_its_mlflow_run_leaves_no_run_running`).
    """
    records = read_records(path)
    if not any(r["event"] == "end" for r in records):
        return False
    last = {r["pid"]: r for r in records}
    now = time.time()
    return all(r["event"] == "start" and now - r["start"] < sleep - 0.4 for r in last.values())


# ---------------------------------------------------------------- processes


class App:
    """The test app started in the background with ``-m``; its output goes to a file."""

    def __init__(self, cwd: Path, args: Sequence[str], name: str) -> None:
        self.cwd = cwd
        self.log = cwd / f"{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.launched = time.time()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(APP), "-m", *args],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.exited: float | None = None  # time.monotonic() when it was seen ended
        self.helpers: set[int] = set()  # processes it started (loky workers...)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, size: int = 4000) -> str:
        return f"--- {self.log.name} ---\n{self.output[-size:]}"

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.exited is None:
            self.exited = time.monotonic()
        return code

    def wait_until(self, condition: Callable[[], object], what: str, timeout: float = 90) -> None:
        """Wait (bounded) for ``condition()``; fail at once if the app ends first."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.poll() is not None:
                code = self.proc.returncode
                raise AssertionError(f"exit code {code} before {what}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s\n{self.tail()}")
            time.sleep(POLL)

    def wait_for_line(self, text: str, timeout: float = 90) -> None:
        self.wait_until(lambda: text in self.output, repr(text), timeout)

    def send(self, signum: int, timeout: float = 60) -> int:
        """Signal the sweeper's process only; return its exit code (-N: killed by signal N)."""
        self.helpers.update(children_of(self.pid))
        os.kill(self.pid, signum)
        return self.wait(timeout)

    def wait(self, timeout: float = 180) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s\n{self.tail()}") from None
        self.poll()
        return code

    def clean_up(self, records: Path | None) -> None:
        """Kill whatever a failed test left: the sweeper and its workers."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        ran_jobs = {r["pid"] for r in read_records(records)} if records else set()
        for pid in self.helpers | ran_jobs:
            if pid != os.getpid() and is_alive(pid) and sys.executable in cmdline(pid):
                os.kill(pid, signal.SIGKILL)


def wait_all(apps: Sequence[App], timeout: float = 180) -> None:
    """Wait (bounded) for every app to end, noting when each ended."""
    deadline = time.monotonic() + timeout
    while [app for app in apps if app.poll() is None]:  # polls each (notes when it ended)
        if time.monotonic() > deadline:
            raise AssertionError(f"still running after {timeout} s")
        time.sleep(POLL)


# ---------------------------------------------------------------- fixtures and stores


@pytest.fixture
def records(tmp_path) -> Path:
    """The file the app's jobs append their records to."""
    return tmp_path / "records.jsonl"


@pytest.fixture
def launch(tmp_path, records):
    """``launch(*args, name=...)`` starts the app in tmp_path; leftovers are killed at the end."""
    apps: list[App] = []

    def _launch(*args: str, name: str = "sweeper") -> App:
        app = App(tmp_path, args, name)
        apps.append(app)
        return app

    yield _launch
    for app in apps:
        app.clean_up(records)


@pytest.fixture
def mlflow_db(tmp_path, mlflow_template):
    """A fresh (already migrated) default MLflow store, ./mlflow.db in the app's cwd."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path}/mlflow.db"


def load_study(cwd: Path, name: str | None = None) -> optuna.Study:
    """The sweep's study in ``cwd/optuna.db`` (the only one, unless named)."""
    storage = f"sqlite:///{cwd}/optuna.db"
    if name is None:
        [name] = [
            s.study_name
            for s in optuna.get_all_study_summaries(storage)
            if is_sweep_study(s.study_name)
        ]
    return optuna.load_study(study_name=name, storage=storage)


def mlflow_runs(cwd: Path) -> tuple[list, list]:
    """The parent runs and the child runs of experiment ``app`` in ``cwd/mlflow.db``."""
    client = MlflowClient(f"sqlite:///{cwd}/mlflow.db")
    experiment = client.get_experiment_by_name("app")
    if experiment is None:
        return [], []
    runs = client.search_runs([experiment.experiment_id], max_results=10_000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def study_name_in(output: str) -> str:
    """The study name the sweeper announced ("... (study 'app-product-a-1a2b3c4d')")."""
    match = re.search(r"\(study '([^']+)'\)", output)
    assert match, output
    return match.group(1)


# ---------------------------------------------------------------- checks


def assert_each_job_ended_once(records: Path, expected: Counter) -> None:
    """The app's own records: every job of the plan ended exactly once, over all runs."""
    ended = Counter(job_of(r) for r in read_records(records, "end"))
    assert ended == expected, f"ended (a, b, model): {sorted(ended.items())}"


def assert_each_slot_complete_once(study: optuna.Study, slots: int) -> None:
    """Nothing RUNNING or WAITING; each slot of the plan has exactly one COMPLETE trial."""
    trials = study.trials
    unfinished = [(t.number, t.state.name) for t in trials if not t.state.is_finished()]
    assert not unfinished, f"unfinished trials: {unfinished}"
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    per_slot = Counter(t.user_attrs["slot"] for t in complete)
    assert len(per_slot) == slots, sorted(per_slot)
    assert set(per_slot.values()) == {1}, per_slot
    for trial in complete:
        assert trial.value == score(trial.params["a"], float(trial.params.get("b", 0.0)))
    for trial in trials:
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs.get("reason"), trial.user_attrs


def assert_mlflow_mirrors(cwd: Path, study: optuna.Study) -> None:
    """One FINISHED parent run; trials and child runs match one to one; none RUNNING."""
    parents, children = mlflow_runs(cwd)
    [parent] = [p for p in parents if p.data.tags.get("ivory.study_name") == study.study_name]
    assert parent.info.status == "FINISHED", parent.info
    assert parent.info.run_name.startswith("task#")
    runs = {r.info.run_id: r for r in children}
    for trial in study.trials:
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.run_name == trial.user_attrs["run_name"]
        if trial.state == TrialState.COMPLETE:
            assert run.info.status == "FINISHED", (trial.number, run.info)
            assert run.data.metrics["score"] == trial.value
        else:
            assert run.info.status == "KILLED", (trial.number, trial.user_attrs, run.info)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == set(runs)
    running = [(r.info.run_name, dict(r.data.tags)) for r in children if r.info.status == "RUNNING"]
    assert not running, f"MLflow runs left RUNNING: {running}"


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_sigkill_after_k_jobs_keeps_their_results(launch, records, tmp_path, mlflow_db, launcher):
    """A SIGKILLed sweeper loses nothing its finished jobs stored.

    One batch of six 1 s jobs; the sweeper is killed once two jobs finished
    (their process went on to another job). Those jobs' trials are COMPLETE
    with their scores, and their MLflow child runs FINISHED with metric score.
    """
    app = launch("a=0-5", "sleep=1", f"record={records}", *LAUNCHERS[launcher])
    app.wait_until(lambda: len(settled(read_records(records))) >= 2, "two finished jobs")
    done = settled(read_records(records))
    assert app.send(signal.SIGKILL) == -signal.SIGKILL

    study = load_study(tmp_path)
    assert len(study.trials) == 6  # one batch, all claimed before the first job
    trials = {t.params["a"]: t for t in study.trials}
    parents, children = mlflow_runs(tmp_path)
    [parent] = parents
    runs = {r.info.run_id: r for r in children}
    assert len(done) >= 2
    for job in done:
        trial = trials[job["a"]]
        assert trial.state == TrialState.COMPLETE, (job, trial.state)
        assert trial.value == score(job["a"])
        run = runs[trial.user_attrs["mlflow_run_id"]]
        assert run.info.run_name == trial.user_attrs["run_name"]
        assert run.info.run_name.startswith("run#")
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        assert run.data.metrics["score"] == trial.value
    if launcher == "basic":  # the jobs ran in the killed process: the rest are as it left them
        states = Counter(t.state for t in study.trials)
        assert states[TrialState.FAIL] == 0, states
        assert states[TrialState.RUNNING] <= 1, states  # the job in flight
        assert states[TrialState.COMPLETE] >= len(done)
        not_started = 6 - states[TrialState.COMPLETE] - states[TrialState.RUNNING]
        assert states[TrialState.WAITING] == not_started, states
        assert parent.info.status == "RUNNING"  # nothing of the sweeper ran after the kill


FAULTS = [
    # (where the signal comes, launcher, signal)
    pytest.param("before", "joblib", signal.SIGKILL, id="before-joblib-SIGKILL"),
    pytest.param("before", "basic", signal.SIGTERM, id="before-basic-SIGTERM"),
    pytest.param("during", "joblib", signal.SIGKILL, id="during-joblib-SIGKILL"),
    pytest.param("during", "basic", signal.SIGKILL, id="during-basic-SIGKILL"),
    pytest.param("during", "basic", signal.SIGTERM, id="during-basic-SIGTERM"),
    pytest.param("during", "joblib", signal.SIGTERM, id="during-joblib-SIGTERM"),
    pytest.param("between", "basic", signal.SIGKILL, id="between-basic-SIGKILL"),
    pytest.param("between", "joblib", signal.SIGTERM, id="between-joblib-SIGTERM"),
]


@pytest.mark.parametrize(("point", "launcher", "signum"), FAULTS)
def test_a_stopped_sweep_resumes_and_runs_every_job_once(
    launch, records, tmp_path, mlflow_db, point, launcher, signum
):
    """Stop the sweeper at some point, run the same command again: the sweep finishes whole.

    Points: ``before`` any job (as soon as the sweeper announces itself),
    ``during`` a batch (a job ended and others run), ``between`` the two
    batches of a chain (once step 0's decision is logged). Afterwards every job
    of the plan ended exactly once by the app's records, each slot has one
    COMPLETE trial and nothing is RUNNING or WAITING in Optuna or MLflow, and
    every process that ran a job is gone.
    """
    chain = point == "between"
    # Two joblib workers start their second jobs up to a second apart on a busy
    # machine; longer jobs keep a moment when both are asleep in them.
    sleep = 2.0 if launcher == "joblib" and point == "during" else 1.0
    product = (*PRODUCT[:-1], f"sleep={sleep:g}")
    plan, expected = (CHAIN, CHAIN_JOBS) if chain else (product, PRODUCT_JOBS)
    args = (*plan, f"record={records}", *LAUNCHERS[launcher])
    app = launch(*args)
    if point == "before":
        app.wait_for_line("Ivory sweeper:")
    elif point == "during":
        app.wait_until(lambda: asleep_in_jobs(records, sleep=sleep), "a job ended, others run")
    else:
        app.wait_for_line("Chain: a is fixed")
    code = app.send(signum)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 143, app.tail()
        assert "Stopped (SIGTERM)" in app.output

    rerun = launch(*args, name="rerun")
    assert rerun.wait() == 0, rerun.tail()
    assert_each_job_ended_once(records, expected)
    study = load_study(tmp_path)
    assert_each_slot_complete_once(study, sum(expected.values()))
    if chain:
        assert study.user_attrs["decisions"]["a"]["value"] == 2
    assert_mlflow_mirrors(tmp_path, study)
    assert_processes_end({r["pid"] for r in read_records(records)})


@pytest.mark.parametrize("where", ["fresh", "existing"])
def test_the_same_sweep_started_twice_at_once(launch, records, tmp_path, mlflow_db, where):
    """Of two identical commands started together, one runs the sweep and one is refused.

    The refused one exits 1 at once, naming the live sweeper, while the other
    runs every job exactly once under one MLflow parent run. ``existing``: the
    stores already hold another sweep. (Should the second start only after the
    first ended, it finds nothing to run and exits 0.)
    """
    if where == "existing":
        earlier = run_app(tmp_path, "a=7,8")
        assert earlier.returncode == 0, earlier.output
    args = ("a=0-2", "sleep=1", f"record={records}")
    apps = [launch(*args, name="first"), launch(*args, name="second")]
    wait_all(apps)

    refused = [app for app in apps if "is already running" in app.output]
    too_late = [app for app in apps if "nothing to run" in app.output]  # started after the end
    [other] = refused or too_late
    [winner] = [app for app in apps if app is not other]
    assert winner.proc.returncode == 0, winner.tail()
    if refused:
        assert other.proc.returncode == 1, other.tail()
        assert f"pid {winner.pid} on {socket.gethostname()}" in other.output
        assert other.exited < winner.exited, "the refused sweeper waited for the other one"
    else:
        assert other.proc.returncode == 0, other.tail()
    assert_each_job_ended_once(records, Counter((a, 0.0, "small") for a in range(3)))
    assert {r["pid"] for r in read_records(records)} == {winner.pid}
    name = study_name_in(winner.output)
    assert_each_slot_complete_once(load_study(tmp_path, name), 3)
    parents, _ = mlflow_runs(tmp_path)
    ours = [p for p in parents if p.data.tags.get("ivory.study_name") == name]
    assert len(ours) == 1 and ours[0].info.run_name.startswith("task#"), ours
    assert len(parents) == (2 if where == "existing" else 1)


def test_a_million_job_product_starts_at_once_in_bounded_memory(launch, records, tmp_path):
    """A product of 1,000,000 jobs starts its first job within seconds, in bounded memory.

    The sweeper spends under 10 s of CPU (most of it imports) before its first
    job starts; the wall-clock bound is looser, since other tests may share the
    CPUs. Only the first batch is claimed; SIGTERM stops it with code 143 and
    leaves no trial RUNNING or WAITING.
    """
    app = launch("a=0-999", "b=0-999", f"record={records}", MLFLOW_OFF)
    app.wait_until(lambda: read_records(records, "start"), "the first job's start")
    assert cpu_seconds(app.pid) < 10
    assert read_records(records, "start")[0]["start"] - app.launched < 20
    app.wait_until(lambda: len(read_records(records, "end")) >= 5, "five jobs' ends")
    status = Path(f"/proc/{app.pid}/status").read_text()
    [peak_kb] = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")]
    assert peak_kb < 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    assert app.send(signal.SIGTERM) == 143, app.tail()
    assert app.output.count("1,000,000 jobs") == 1, app.tail()
    trials = load_study(tmp_path).trials
    assert len(trials) == DEFAULT_BATCH_LIMIT
    assert all(t.state.is_finished() for t in trials)


def test_each_trial_times_are_its_own_jobs(records, tmp_path):
    """A trial starts when its own job starts and completes when it ends, not with its batch."""
    result = run_app(tmp_path, "a=0-2", "sleep=0.3", f"record={records}", MLFLOW_OFF)
    assert result.returncode == 0, result.output
    jobs = {r["a"]: r for r in read_records(records, "end")}
    trials = sorted(load_study(tmp_path).trials, key=lambda t: t.datetime_start)
    assert [t.params["a"] for t in trials] == [0, 1, 2]
    for trial in trials:
        job = jobs[trial.params["a"]]
        started = trial.datetime_start.timestamp()
        completed = trial.datetime_complete.timestamp()
        assert job["start"] - 0.5 <= started <= job["end"], (trial.number, started, job)
        assert job["start"] <= completed <= job["end"] + 1.0, (trial.number, completed, job)
    for earlier, later in zip(trials, trials[1:], strict=False):
        assert earlier.datetime_complete <= later.datetime_start


# ---------------------------------------------------------------- regressions
# Each test below reproduces a fault this suite once found; each is fixed, and
# a failure raises BugShown naming what came back.


def test_a_stop_while_a_batch_is_claimed_leaves_no_mlflow_run_running(
    launch, records, tmp_path, mlflow_db
):
    """SIGTERM while a chain's step 1 is being claimed leaves no MLflow child run RUNNING.

    The signal comes right after the first child run of step 1 is created:
    step 1 has 20 runs to claim, so it lands while the engine creates them (or,
    on a busy machine where polling MLflow is slow, early in the batch: its
    jobs take 0.3 s each so that the sweep cannot end first). The sweeper must
    stop with 143; the rerun must finish the sweep (each slot one COMPLETE
    trial) and leave no child run RUNNING, those of the interrupted claim
    included.
    """
    args = ("hydra.sweeper.mode=chain", "a=1-3", "b=0-19", "sleep=0.3", f"record={records}")
    app = launch(*args)
    app.wait_for_line("Chain: a is fixed")
    app.wait_until(lambda: len(mlflow_runs(tmp_path)[1]) > 3, "a child run of step 1")
    assert app.send(signal.SIGTERM) == 143, app.tail()
    rerun = launch(*args, name="rerun")
    assert rerun.wait() == 0, rerun.tail()
    study = load_study(tmp_path)
    assert_each_slot_complete_once(study, 3 + 20)
    _, children = mlflow_runs(tmp_path)
    running = [r.info.run_name for r in children if r.info.status == "RUNNING"]
    if running:
        raise BugShown(f"MLflow child runs left RUNNING after the rerun: {running}")


def test_a_job_killed_while_it_ends_its_mlflow_run_leaves_no_run_running(
    launch, records, tmp_path, mlflow_db
):
    """SIGKILL between the two halves of a job storing its outcome: the rerun settles its run.

    The test holds MLflow's SQLite store locked from the first job's start on
    (as a busy tracking store would), so that the job, its trial COMPLETE in
    Optuna, waits to end its MLflow run; the sweeper is killed then. The rerun
    must run the rest of the sweep, keep the first trial COMPLETE with its
    score, and end that trial's MLflow run FINISHED (MLflow follows the storage).
    """
    args = ("a=0-1", "sleep=1", f"record={records}")
    app = launch(*args)
    app.wait_until(lambda: read_records(records, "start"), "the first job's start")
    lock = sqlite3.connect(tmp_path / "mlflow.db", timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        app.wait_until(
            lambda: load_study(tmp_path).trials[0].state == TrialState.COMPLETE,
            "the first job's trial COMPLETE",
        )
        assert app.send(signal.SIGKILL) == -signal.SIGKILL
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    rerun = launch(*args, name="rerun")
    assert rerun.wait() == 0, rerun.tail()
    study = load_study(tmp_path)
    assert_each_slot_complete_once(study, 2)
    first = study.trials[0]
    assert first.state == TrialState.COMPLETE and first.value == score(0)
    runs = {r.info.run_id: r for r in mlflow_runs(tmp_path)[1]}
    status = runs[first.user_attrs["mlflow_run_id"]].info.status
    if status != "FINISHED":
        raise BugShown(f"the COMPLETE trial's MLflow run is {status} after the rerun")


def test_idle_joblib_workers_end_with_a_killed_sweeper(launch, records, tmp_path):
    """SIGKILL a joblib sweeper of one long job on two workers: both workers end.

    The worker that runs the job must notice, fail its trial (naming the dead
    sweeper) and exit within 10 s; the idle worker must end too: the watcher
    sends it SIGTERM 3 s after the sweeper died, and SIGKILL 5 s later.
    """
    app = launch("a=0", "sleep=30", f"record={records}", *LAUNCHERS["joblib"], MLFLOW_OFF)
    app.wait_until(lambda: read_records(records, "start"), "the job's start")
    workers = [pid for pid in children_of(app.pid) if "popen_loky" in cmdline(pid)]
    assert len(workers) == 2, [cmdline(pid) for pid in children_of(app.pid)]
    [busy] = {r["pid"] for r in read_records(records, "start")}
    assert app.send(signal.SIGKILL) == -signal.SIGKILL
    assert_processes_end([busy], timeout=10)
    [trial] = load_study(tmp_path).trials
    assert trial.state == TrialState.FAIL
    assert f"pid {app.pid}) died" in trial.user_attrs["reason"]
    left = still_alive(workers, timeout=10)
    if left:
        raise BugShown(f"idle loky workers alive 10 s after the sweeper was killed: {left}")


def test_sigterm_while_the_sweeper_starts_exits_143(launch, records, tmp_path, mlflow_db):
    """SIGTERM as soon as the sweeper announces itself: it stops like Ctrl-C (143), no job run."""
    app = launch(*PRODUCT, f"record={records}")
    app.wait_for_line("Ivory sweeper:")
    code = app.send(signal.SIGTERM)
    assert not read_records(records)
    if code != 143:
        raise BugShown(f"exit code {code}\n{app.tail()}")

"""Shared helpers: run real Hydra apps as subprocesses in a fresh directory."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
#: A sweep's default study name: <job>-<mode>[-<swept keys>]-<digest>
#: (a task's study is <experiment>.task#K).
SWEEP_STUDY = re.compile(r"^[^.]+?-(product|chain|optimize)(-.+)?-[0-9a-f]{8}$")


def is_sweep_study(name: str) -> bool:
    """Whether ``name`` is a sweep's default study name."""
    return SWEEP_STUDY.match(name) is not None


sys.path.insert(0, str(Path(__file__).parent))


@dataclass
class AppRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def run_lines(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("[run#")]


def run_app(
    cwd: Path,
    *args: str,
    app: str = "sweep/app.py",
    env: dict | None = None,
    timeout: float = 300,
) -> AppRun:
    """Run a test app with ``-m`` in ``cwd`` (where its embedded stores go)."""
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    full_env.pop(
        "MLFLOW_TRACKING_URI", None
    ) if env is None or "MLFLOW_TRACKING_URI" not in env else None
    proc = subprocess.run(
        [sys.executable, str(APPS / app), "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return AppRun(proc.returncode, proc.stdout, proc.stderr)


def start_sweep(cwd: Path, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start the sweep app (``-m``) in the background, its output in ``<name>.log``; the
    sweep folder is ``name``. MLflow's and CUDA's variables of the test's own environment
    are left out."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    full_env.pop("MLFLOW_TRACKING_URI", None)
    if "CUDA_VISIBLE_DEVICES" not in (env or {}):
        full_env.pop("CUDA_VISIBLE_DEVICES", None)
    out = open(cwd / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, str(APPS / "sweep/app.py"), "-m", *args, f"hydra.sweep.dir={name}"],
        cwd=cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=full_env,
    )


@pytest.fixture
def sweep(tmp_path):
    """``sweep(*overrides)`` runs the sweep app in tmp_path with MLflow off."""

    def _run(*args: str, mlflow: bool = False, **kwargs) -> AppRun:
        extra = [] if mlflow else ["hydra.sweeper.mlflow.enabled=false"]
        return run_app(tmp_path, *extra, *args, **kwargs)

    return _run


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store.

    Creating one runs MLflow's schema migrations (several seconds); copying
    this file gives each test a fresh store for a few milliseconds.
    """
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(scope="session")
def mlflow_server_url(mlflow_pg_server):
    """A real ``mlflow server`` on 127.0.0.1 for the whole session.

    It is :func:`mlflow_pg_server` (runs in PostgreSQL, artifacts served over
    HTTP), so a session starts one tracking server, not two.
    """
    return mlflow_pg_server.url


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 (password auth) for the whole session."""
    from postgres_server import start_postgres_server

    with start_postgres_server() as url:
        yield url


@pytest.fixture(params=["postgresql", "journal", "grpc"])
def shared_storage(request, tmp_path):
    """A storage that several workers share: a fresh PostgreSQL database, a journal
    file, or a real gRPC proxy process (``python -m ivory_hydra.proxy``) in front of
    a fresh PostgreSQL database."""
    if request.param == "journal":
        return str(tmp_path / "sweep.journal")
    from postgres_server import fresh_database

    database = fresh_database(request.getfixturevalue("postgres_url"))
    if request.param == "grpc":
        from grpc_proxy import start_proxy

        stack = contextlib.ExitStack()
        request.addfinalizer(stack.close)
        return stack.enter_context(start_proxy(database)).url
    return database


@pytest.fixture(scope="session")
def mlflow_pg_server(postgres_url, tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 whose runs live in PostgreSQL, for the session.

    Its backend store is a fresh database on the ``postgres_url`` server;
    artifacts are served over HTTP from a temp folder. An ``MlflowServer``:
    ``.url``, ``.backend_store_uri``, ``.artifacts``.
    """
    from mlflow_server import start_mlflow_pg_server

    with start_mlflow_pg_server(tmp_path_factory.mktemp("mlflow-pg-server"), postgres_url) as srv:
        yield srv


@pytest.fixture(scope="session")
def mlflow_pg_server_url(mlflow_pg_server):
    """The URL of :func:`mlflow_pg_server`, ``http://127.0.0.1:<port>``."""
    return mlflow_pg_server.url


@pytest.fixture
def storage_url(tmp_path):
    return f"sqlite:///{tmp_path}/optuna.db"


# ---------------------------------------------------------------- server tests in CI
#
# The tests that need a real server must run in CI, not skip. Every test is
# tagged with the servers it used (its markers, and the fixtures it requested,
# getfixturevalue() included) in its reports' keywords, which pytest-xdist
# carries to the controller; the terminal summary then prints
#
#     server tests ran: postgresql=<n> mlflow-server=<n> ray=<n> browser=<n>
#
# counting passed tests, plus what skipped or failed. With
# IVORY_REQUIRE_SERVER_TESTS=1 a run in which any kind ran no test, or any
# server test skipped, exits non-zero (for CI's full run).

#: Marker -> (name in the summary line, description).
SERVER_MARKERS = {
    "postgres": ("postgresql", "uses a real PostgreSQL server (tests/postgres_server.py)"),
    "mlflow_server": ("mlflow-server", "uses a real `mlflow server` (tests/mlflow_server.py)"),
    "ray": ("ray", "starts a local Ray instance (hydra/launcher=ray)"),
    "browser": ("browser", "drives a real headless Chromium (Playwright, /usr/bin/chromium)"),
}
#: Fixtures that start a server -> the markers they imply.
SERVER_FIXTURES = {
    "postgres_url": ("postgres",),
    "mlflow_server_url": ("mlflow_server",),
    "mlflow_pg_server": ("mlflow_server", "postgres"),
}
REQUIRE_SERVER_TESTS = "IVORY_REQUIRE_SERVER_TESTS"
_SERVER_KEYWORD = "ivory-server:"
_request_key = pytest.StashKey[pytest.FixtureRequest]()
_summary_key = pytest.StashKey[list[str]]()


def pytest_configure(config):
    for marker, (_name, text) in SERVER_MARKERS.items():
        config.addinivalue_line("markers", f"{marker}: {text}")


@pytest.fixture(autouse=True)
def _servers_used(request):
    """Keeps the test's request, whose fixturenames include getfixturevalue() ones."""
    request.node.stash[_request_key] = request


def _server_markers(item: pytest.Item) -> set[str]:
    found = {m.name for m in item.iter_markers() if m.name in SERVER_MARKERS}
    request = item.stash.get(_request_key, None)
    names = set(getattr(item, "fixturenames", ()))
    if request is not None:
        names.update(request.fixturenames)
    for name in names & set(SERVER_FIXTURES):
        found.update(SERVER_FIXTURES[name])
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" or not report.passed:  # and a skip or error outside the call
        for marker in _server_markers(item):
            report.keywords[_SERVER_KEYWORD + marker] = 1
    return report


def _server_counts(stats: dict) -> dict[str, dict[str, int]]:
    """{outcome: {marker: count}} over the reports the terminal reporter collected."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "skipped", "failed", "error"):
        per_marker = dict.fromkeys(SERVER_MARKERS, 0)
        for report in stats.get(outcome, []):
            keywords = getattr(report, "keywords", None) or {}
            for marker in SERVER_MARKERS:
                if _SERVER_KEYWORD + marker in keywords:
                    per_marker[marker] += 1
        counts[outcome] = per_marker
    return counts


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput") or config.option.collectonly:
        return  # an xdist worker (the controller reports), or no test ran
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    counts = _server_counts(reporter.stats)
    ran = " ".join(f"{SERVER_MARKERS[m][0]}={n}" for m, n in counts["passed"].items())
    lines = [f"server tests ran: {ran}"]
    for outcome in ("skipped", "failed", "error"):
        if any(counts[outcome].values()):
            text = " ".join(f"{SERVER_MARKERS[m][0]}={n}" for m, n in counts[outcome].items() if n)
            lines.append(f"server tests {outcome}: {text}")
    if os.environ.get(REQUIRE_SERVER_TESTS) == "1":
        missing = [SERVER_MARKERS[m][0] for m, n in counts["passed"].items() if not n]
        skipped = sum(counts["skipped"].values())
        if missing or skipped:
            lines.append(
                f"{REQUIRE_SERVER_TESTS}=1: server tests must run here, but "
                + (f"none ran for {', '.join(missing)}" if missing else "")
                + ("; " if missing and skipped else "")
                + (f"{skipped} skipped" if skipped else "")
            )
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    config.stash[_summary_key] = lines


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    for line in config.stash.get(_summary_key, []):
        terminalreporter.write_line(line)


# Scripts run as subprocesses, not test modules (--doctest-modules would import them).
collect_ignore = [
    "seed_transcript.py",
    "mlflow_server.py",
    "postgres_server.py",
    "processes.py",
    "convergence.py",
    "sqlite_lock.py",
]
collect_ignore_glob = ["apps/*"]

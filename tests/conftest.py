"""Shared helpers: run real Hydra apps as subprocesses in a fresh directory."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

APPS = Path(__file__).parent / "apps"
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
def mlflow_server_url(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 for the whole session."""
    from mlflow_server import start_mlflow_server

    with start_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 (password auth) for the whole session."""
    from postgres_server import start_postgres_server

    with start_postgres_server() as url:
        yield url


@pytest.fixture
def storage_url(tmp_path):
    return f"sqlite:///{tmp_path}/optuna.db"


# Scripts run as subprocesses, not test modules (--doctest-modules would import them).
collect_ignore = ["seed_transcript.py", "mlflow_server.py", "postgres_server.py"]
collect_ignore_glob = ["apps/*"]

"""Chaos: workers killed at random while PostgreSQL and the MLflow server restart.

Three copies of one command share a sweep on a real PostgreSQL server (or a
journal file) and mirror it to a real ``mlflow server``. Every one or two
seconds a random live worker is killed (SIGKILL or SIGTERM) and a new one
started; PostgreSQL restarts once, the MLflow server crashes and comes back
once. Then the same command runs again until it ends well, and the app's own
record, the Optuna storage and the MLflow store must agree
(:mod:`convergence`). The kill schedule is seeded: a failure prints its seed,
and ``IVORY_CHAOS_SEED=<seed>`` replays it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import APPS
from convergence import check_converged

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.mlflow_server]

# a longer soak: IVORY_CHAOS_JOBS=200 IVORY_CHAOS_WORKERS=5 IVORY_CHAOS_SECONDS=120
JOBS = int(os.environ.get("IVORY_CHAOS_JOBS") or 40)
WORKERS = int(os.environ.get("IVORY_CHAOS_WORKERS") or 3)
CHAOS_SECONDS = float(os.environ.get("IVORY_CHAOS_SECONDS") or 30)
SEED = int(os.environ.get("IVORY_CHAOS_SEED") or random.randrange(2**31))


class Swarm:
    """Workers of one command, started and killed by a seeded schedule."""

    def __init__(self, tmp_path: Path, args: list[str]) -> None:
        self.tmp_path = tmp_path
        self.args = args
        self.procs: list[subprocess.Popen[bytes]] = []
        self.killed: list[int] = []
        self.log: list[str] = []

    def start(self) -> subprocess.Popen[bytes]:
        name = f"w{len(self.procs)}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
        env.pop("MLFLOW_TRACKING_URI", None)
        out = open(self.tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed by the process
        proc = subprocess.Popen(
            [
                sys.executable,
                str(APPS / "sweep/app.py"),
                "-m",
                *self.args,
                f"hydra.sweep.dir={name}",
            ],
            cwd=self.tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.procs.append(proc)
        return proc

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill_one(self, rng: random.Random) -> None:
        live = self.live()
        if not live:
            return
        victim = rng.choice(live)
        signum = rng.choice([signal.SIGKILL, signal.SIGTERM])
        victim.send_signal(signum)
        self.killed.append(victim.pid)
        self.log.append(f"{time.strftime('%X')} {signum.name} pid {victim.pid}")

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))

    def tails(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-1500:]}"
            for path in sorted(self.tmp_path.glob("w*.log"))[-4:]
        )


@pytest.mark.parametrize("backend", ["postgresql", "journal"])
def test_kills_and_restarts_end_with_both_stores_complete_and_in_agreement(tmp_path, backend):
    from mlflow_server import mlflow_server
    from postgres_server import fresh_database, postgres_server

    seed = SEED + (backend == "journal")
    rng = random.Random(seed)
    print(f"chaos seed {seed}")  # shown with -s or -rP
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres_server()) if backend == "postgresql" else None
        storage = fresh_database(pg.url) if pg else str(tmp_path / "sweep.journal")
        server = stack.enter_context(mlflow_server(tmp_path / "mlflow"))
        record = tmp_path / "jobs.jsonl"
        args = [
            f"hydra.sweeper.storage={storage}",
            f"hydra.sweeper.mlflow.tracking_uri={server.url}",
            f"record={record}",
            f"a=0-{JOBS - 1}",
            "sleep=0.3",
            "hydra.sweeper.heartbeat_interval=1",
            "hydra.sweeper.grace_period=6",
            "hydra.sweeper.storage_retry=60",
        ]
        swarm = Swarm(tmp_path, args)
        for _ in range(WORKERS):
            swarm.start()
        start = time.monotonic()
        next_kill = start + rng.uniform(1, 2)
        restart_pg = start + rng.uniform(4, 8) if pg else None
        restart_mlflow = start + rng.uniform(10, 16)
        try:
            while time.monotonic() - start < CHAOS_SECONDS:
                now = time.monotonic()
                if now >= next_kill:
                    swarm.kill_one(rng)
                    swarm.start()
                    next_kill = now + rng.uniform(1, 2)
                if restart_pg is not None and now >= restart_pg:
                    restart_pg = None
                    pg.stop(mode=rng.choice(["fast", "immediate"]))
                    swarm.log.append(f"{time.strftime('%X')} PostgreSQL stopped")
                    time.sleep(rng.uniform(1, 3))
                    pg.start()
                if restart_mlflow is not None and now >= restart_mlflow:
                    restart_mlflow = None
                    server.stop(kill=True)
                    swarm.log.append(f"{time.strftime('%X')} MLflow server killed")
                    time.sleep(rng.uniform(1, 3))
                    server.start()
                time.sleep(0.05)
            swarm.wait(timeout=300)
            for _attempt in range(5):  # the same command again, until it ends well
                if swarm.start().wait(timeout=300) == 0:
                    break
            else:
                pytest.fail("five reruns did not end the sweep")
            check_converged(storage, server.url, record, range(JOBS), swarm.killed)
        except BaseException as error:
            for proc in swarm.live():
                proc.kill()
            note = f"chaos seed {seed} (IVORY_CHAOS_SEED={seed - (backend == 'journal')})"
            events = "\n".join(swarm.log)
            raise AssertionError(f"{note}\n{events}\n{swarm.tails()}\n{error}") from error

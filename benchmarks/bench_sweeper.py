"""Per-job cost of the ivory sweeper against its peers, in the same run.

    python benchmarks/bench_sweeper.py [--jobs 100] [--repeat 3] [--optuna-python PATH]

The peers are Hydra's BasicSweeper and, when ``--optuna-python`` names a Python
that has ``hydra-optuna-sweeper`` (it pins optuna<3, so it lives in a venv of
its own: ``make bench`` builds ``.venv-optuna-peer``), Hydra's Optuna sweeper.

Each sweeper runs the same no-op app over the same number of jobs as a
subprocess in a fresh directory; every SQLite store is new. The per-job cost is
``(time(N jobs) - time(1 job)) / (N - 1)``, which takes process start-up out.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).parent / "apps" / "noop.py"
QUIET = ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def grid(jobs: int) -> list[str]:
    """A product of two int params with ``jobs`` points."""
    if jobs == 1:
        return ["+x=0", "+y=0"]
    side = 10 if jobs >= 100 else 2
    return [f"+x=range(0,{side})", f"+y=range(0,{jobs // side})"]


def sweeper_args(sweeper: str, jobs: int, tmp: str) -> list[str]:
    if sweeper == "basic":
        return ["hydra/sweeper=basic", *grid(jobs)]
    if sweeper == "ivory":
        return [
            "hydra/sweeper=ivory",
            "hydra.sweeper.mlflow.enabled=false",
            "hydra.sweeper.verbose=0",
            *grid(jobs),
        ]
    if sweeper == "ivory+mlflow":
        return ["hydra/sweeper=ivory", "hydra.sweeper.verbose=0", *grid(jobs)]
    # Hydra's Optuna sweeper: the same number of trials, all in one batch.
    return [
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=random",
        f"hydra.sweeper.n_trials={jobs}",
        f"hydra.sweeper.n_jobs={jobs}",
        f"hydra.sweeper.storage=sqlite:///{tmp}/optuna.db",
        "hydra.sweeper.study_name=bench",
        "+x=range(0,10)",
        "+y=range(0,10)",
    ]


def run(python: str, sweeper: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = [python, str(APP), "-m", *sweeper_args(sweeper, jobs, tmp), *QUIET]
        start = time.perf_counter()
        subprocess.run(args, cwd=tmp, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--optuna-python", help="a Python with hydra-optuna-sweeper installed")
    args = parser.parse_args()
    pythons = {name: sys.executable for name in ("basic", "ivory", "ivory+mlflow")}
    if args.optuna_python:  # absolute, not resolved: a venv's python is a symlink
        pythons["optuna (peer venv)"] = os.path.abspath(args.optuna_python)
    per_job: dict[str, float] = {}
    for sweeper, python in pythons.items():
        name = "optuna" if sweeper.startswith("optuna") else sweeper
        costs = []
        for _ in range(args.repeat):
            one = run(python, name, 1)
            many = run(python, name, args.jobs)
            costs.append((many - one) / (args.jobs - 1))
        per_job[sweeper] = statistics.median(costs)
        print(f"  measured {sweeper}: {per_job[sweeper] * 1000:.1f} ms/job", flush=True)
    print(f"{args.jobs} no-op jobs, median of {args.repeat} runs, start-up removed")
    print(f"{'sweeper':<20} {'ms/job':>8} {'vs basic':>9} {'vs optuna':>10}")
    optuna = per_job.get("optuna (peer venv)")
    for sweeper, cost in per_job.items():
        vs_optuna = f"{cost / optuna:>10.2f}" if optuna else f"{'-':>10}"
        print(f"{sweeper:<20} {cost * 1000:>8.1f} {cost / per_job['basic']:>9.2f} {vs_optuna}")


if __name__ == "__main__":
    main()

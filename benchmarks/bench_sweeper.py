"""Per-job cost of the ivory sweeper against Hydra's BasicSweeper, in the same run.

    python benchmarks/bench_sweeper.py [--jobs 100] [--repeat 3]

Each sweeper runs the same no-op app over the same grid (``x`` times ``y``) as
a subprocess in a fresh directory. The per-job cost is
``(time(N jobs) - time(1 job)) / (N - 1)``, which takes process start-up out.
The ivory sweeper writes every job to a fresh SQLite Optuna study (and, in the
last column, to a fresh SQLite MLflow store).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).parent / "apps" / "noop.py"

SWEEPERS = {
    "basic": ["hydra/sweeper=basic"],
    "ivory": ["hydra/sweeper=ivory", "hydra.sweeper.mlflow.enabled=false"],
    "ivory+mlflow": ["hydra/sweeper=ivory"],
}


def grid(jobs: int) -> list[str]:
    if jobs == 1:
        return ["+x=0", "+y=0"]
    side = 10 if jobs >= 100 else 2
    return [f"+x=range(0,{side})", f"+y=range(0,{jobs // side})"]


def run(sweeper: str, jobs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            sys.executable,
            str(APP),
            "-m",
            *SWEEPERS[sweeper],
            *grid(jobs),
            "hydra/job_logging=disabled",
            "hydra/hydra_logging=disabled",
        ]
        if sweeper.startswith("ivory"):
            args.append("hydra.sweeper.verbose=0")
        start = time.perf_counter()
        subprocess.run(args, cwd=tmp, check=True, capture_output=True)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_job: dict[str, float] = {}
    for sweeper in SWEEPERS:
        costs = []
        for _ in range(args.repeat):
            one = run(sweeper, 1)
            many = run(sweeper, args.jobs)
            costs.append((many - one) / (args.jobs - 1))
        per_job[sweeper] = statistics.median(costs)
    base = per_job["basic"]
    print(f"{args.jobs} no-op jobs, median of {args.repeat} runs, start-up removed")
    print(f"{'sweeper':<14} {'ms/job':>8} {'ratio vs basic':>15}")
    for sweeper, cost in per_job.items():
        print(f"{sweeper:<14} {cost * 1000:>8.1f} {cost / base:>15.2f}")


if __name__ == "__main__":
    main()

"""Many workers, one sweep: 60 jobs of 0.2 s with 1, 2 and 3 workers on PostgreSQL.

    python benchmarks/bench_workers.py [--jobs 60] [--workers 1,2,3]

Starts a throw-away PostgreSQL server on 127.0.0.1 (Debian's ``postgresql``
binaries, as the tests do), then for each worker count runs that many copies of
the same sweep command at once against a fresh database (MLflow off), and
prints the wall time until the last worker exits, side by side.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from postgres_server import fresh_database, start_postgres_server  # noqa: E402

APP = Path(__file__).parent / "apps" / "sleepy.py"


def run(workers: int, jobs: int, server: str) -> float:
    url = fresh_database(server)
    args = [
        sys.executable,
        str(APP),
        "-m",
        "hydra/sweeper=ivory",
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.verbose=0",
        f"hydra.sweeper.storage={url}",
        f"+x=range(0,{jobs})",
        "+sleep=0.2",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*args, f"hydra.sweep.dir=w{i}"],
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(workers)
        ]
        codes = [p.wait(timeout=600) for p in procs]
        elapsed = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a worker failed: exit codes {codes}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--workers", default="1,2,3")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with start_postgres_server() as server:
        times = {n: run(n, args.jobs, server) for n in counts}
    print(f"{args.jobs} jobs of 0.2 s on one PostgreSQL storage, wall time to the last worker:")
    print(f"{'workers':>8} {'seconds':>9} {'speed-up':>9}")
    for n, seconds in times.items():
        print(f"{n:>8} {seconds:>9.1f} {times[counts[0]] / seconds:>9.2f}")


if __name__ == "__main__":
    main()

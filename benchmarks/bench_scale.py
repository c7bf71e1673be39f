"""Hundreds of workers: N workers share one product sweep, on PostgreSQL directly and
through the gRPC storage proxy (``python -m ivory_hydra.proxy``; or ``--paths bare``,
Optuna's own ``run_grpc_proxy_server``, whose records go to a bookkeeping study).

    .venv/bin/python benchmarks/bench_scale.py [--workers 1,8,16,32,64] [--jobs 256]
                                               [--paths direct,proxy] [--calls]

Starts a throw-away PostgreSQL server on 127.0.0.1 (Debian's ``postgresql``
binaries, as the tests do, with ``max_connections=400`` so that the direct path
can be measured past PostgreSQL's default of 100), then for each path and each N
starts N copies of the same sweep command at once (no-op jobs,
``benchmarks/apps/noop.py``, MLflow off) on a fresh database, and prints:

- wall: seconds from the start of the N processes to the last one's exit (it
  includes starting N Python processes);
- jobs/s: jobs over the time from the first job's end to the last job's end (the
  sweep's throughput once jobs flow);
- busy jobs/s: jobs over the time while every worker works, from the moment the
  last worker to start ended its first job to the moment the first worker to run
  out ended its last ("-" when no such time: too few jobs per worker). On 2
  cores, N Python processes start at once and compete with the jobs for the
  CPU; on a cluster each starts on its own node, so this is the figure that
  says whether the shared storage keeps up as N grows;
- peak conn: the most connections to the sweep's database at once, sampled every
  50 ms from ``pg_stat_activity``;
- opened: the connections opened to the database during the sweep (each one
  a PostgreSQL backend process and an authentication);
- xact/job: the database's transactions (``pg_stat_database``) per job;
- rpc/job: the calls the proxy answered per job (Optuna's and the records service's;
  ``--calls`` lists them by RPC);
- proxy ms/job: the proxy process's CPU time per job (its capacity: one core
  serves about 1000 / this many jobs per second);
- exactly once: from the app's own record (each job appends a line): duplicates
  and missing jobs.

On 2 cores 64 Python processes compete for the CPU: the defaults took 16 minutes
on 2 cores that other work shared (load average about 15).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from grpc_proxy import start_proxy  # noqa: E402
from postgres_server import fresh_database, postgres_server  # noqa: E402

APP = Path(__file__).parent / "apps" / "noop.py"


@dataclass
class Result:
    path: str
    workers: int
    jobs: int
    wall: float
    jobs_per_second: float
    busy_jobs_per_second: float
    peak_connections: int
    transactions_per_job: float
    sessions: int
    rpcs_per_job: float | None
    calls: dict[str, int]
    proxy_ms_per_job: float | None
    duplicates: int
    missing: int


class ConnectionSampler(threading.Thread):
    """The peak of connections to one database, sampled every 50 ms."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        query = (
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        while not self.done.wait(0.05):
            self.peak = max(self.peak, self.conn.execute(query).fetchone()[0])

    def totals(self) -> tuple[int, int]:
        """The database's transactions and sessions (connections opened) so far."""
        query = (
            "SELECT xact_commit + xact_rollback, sessions FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        transactions, sessions = self.conn.execute(query).fetchone()
        return int(transactions), int(sessions)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


def sweep(workers: int, jobs: int, storage: str, folder: Path) -> tuple[float, Path]:
    record = folder / "jobs.jsonl"
    args = [
        sys.executable,
        str(APP),
        "-m",
        "hydra/sweeper=ivory",
        "hydra.sweeper.mlflow.enabled=false",
        "hydra.sweeper.verbose=0",
        f"hydra.sweeper.storage={storage}",
        f"+x=range(0,{jobs})",
        f"+record={record}",
    ]
    start = time.perf_counter()
    logs = [open(folder / f"w{i}.log", "w") for i in range(workers)]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [*args, f"hydra.sweep.dir=w{i}"], cwd=folder, stdout=log, stderr=subprocess.STDOUT
        )
        for i, log in enumerate(logs)
    ]
    codes = [p.wait(timeout=1800) for p in procs]
    elapsed = time.perf_counter() - start
    for log in logs:
        log.close()
    if any(codes):
        failed = next(i for i, code in enumerate(codes) if code)
        tail = (folder / f"w{failed}.log").read_text()[-2000:]
        raise SystemExit(f"a worker failed: exit codes {Counter(codes)}\n{tail}")
    return elapsed, record


def measure(path: str, workers: int, jobs: int, server: str) -> Result:
    database = fresh_database(server)
    sampler = ConnectionSampler(database)
    with tempfile.TemporaryDirectory(prefix="ivory-bench-scale-") as tmp:
        folder = Path(tmp)
        serving = start_proxy(database, bare=path == "bare") if path != "direct" else _nothing()
        with serving as proxy:
            storage = proxy.url if proxy is not None else database
            before = sampler.totals()
            cpu_before = cpu_seconds(proxy)
            sampler.start()
            wall, record = sweep(workers, jobs, storage, folder)
            sampler.stop()
            after = sampler.totals()
            proxy_cpu = cpu_seconds(proxy) - cpu_before
            rpcs, calls = None, {}
            if path == "proxy":
                calls = proxy.calls()
                calls.pop("Calls", None)
                rpcs = sum(calls.values())
        lines = [json.loads(line) for line in record.read_text().splitlines()]
    sampler.conn.close()
    seen = Counter(int(line["x"]) for line in lines)
    ends = sorted(line["end"] for line in lines)
    span = ends[-1] - ends[0]
    by_worker: dict[int, list[float]] = {}
    for line in lines:
        by_worker.setdefault(line["pid"], []).append(line["end"])
    all_busy = max(min(e) for e in by_worker.values())
    one_done = min(max(e) for e in by_worker.values())
    busy = [end for end in ends if all_busy < end <= one_done]
    return Result(
        path=path,
        workers=workers,
        jobs=jobs,
        wall=wall,
        jobs_per_second=(len(ends) - 1) / span if span > 0 else float("nan"),
        busy_jobs_per_second=(
            len(busy) / (one_done - all_busy)
            if len(by_worker) == workers and len(busy) >= workers
            else float("nan")
        ),
        peak_connections=sampler.peak,
        transactions_per_job=(after[0] - before[0]) / jobs,
        sessions=after[1] - before[1],
        rpcs_per_job=None if rpcs is None else rpcs / jobs,
        calls=calls,
        proxy_ms_per_job=1000 * proxy_cpu / jobs if proxy is not None else None,
        duplicates=sum(count - 1 for count in seen.values()),
        missing=len(set(range(jobs)) - set(seen)),
    )


def cpu_seconds(proxy) -> float:
    """The CPU time the proxy process has used so far (0 without a proxy)."""
    if proxy is None:
        return 0.0
    import psutil

    times = psutil.Process(proxy.proc.pid).cpu_times()
    return times.user + times.system


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


HEADER = (
    f"{'path':<7}{'workers':>8}{'jobs':>6}{'wall s':>8}{'jobs/s':>8}{'busy':>6}{'peak conn':>10}"
    f"{'opened':>7}{'xact/job':>9}{'rpc/job':>8}{'proxy ms/job':>13}  exactly once"
)


def row(r: Result) -> str:
    rpc = "-" if r.rpcs_per_job is None else f"{r.rpcs_per_job:.1f}"
    cpu = "-" if r.proxy_ms_per_job is None else f"{r.proxy_ms_per_job:.1f}"
    once = "yes"
    busy = "-" if math.isnan(r.busy_jobs_per_second) else f"{r.busy_jobs_per_second:.1f}"
    if r.duplicates or r.missing:
        once = f"NO ({r.duplicates} duplicates, {r.missing} missing)"
    return (
        f"{r.path:<7}{r.workers:>8}{r.jobs:>6}{r.wall:>8.1f}{r.jobs_per_second:>8.1f}{busy:>6}"
        f"{r.peak_connections:>10}{r.sessions:>7}{r.transactions_per_job:>9.1f}{rpc:>8}"
        f"{cpu:>13}  {once}"
    )


def calls_line(r: Result) -> str:
    top = sorted(r.calls.items(), key=lambda item: -item[1])
    return "        " + ", ".join(f"{name} {count / r.jobs:.2f}" for name, count in top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,8,16,32,64", help="worker counts, comma-separated")
    parser.add_argument("--jobs", type=int, default=256, help="jobs per sweep")
    parser.add_argument(
        "--paths",
        default="direct,proxy",
        help="direct, proxy (python -m ivory_hydra.proxy), bare (Optuna's own proxy)",
    )
    parser.add_argument("--calls", action="store_true", help="the proxy's calls per job, by RPC")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    paths = args.paths.split(",")
    results = []
    print(HEADER, flush=True)
    with postgres_server(max_connections=400) as server:
        for n in counts:
            for path in paths:
                results.append(measure(path, n, args.jobs, server.url))
                print(row(results[-1]), flush=True)
                if args.calls and results[-1].calls:
                    print(calls_line(results[-1]), flush=True)
    broken = [r for r in results if r.duplicates or r.missing]
    if broken:
        raise SystemExit(f"not exactly once: {broken}")


if __name__ == "__main__":
    main()

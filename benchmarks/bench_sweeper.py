"""What a user waits for: whole commands, start-up included, beside Hydra's own sweepers.

    python benchmarks/bench_sweeper.py [--repeat 3] [--scale 1000,10000] [--optuna-python PATH]

Every command runs the same no-op app (``benchmarks/apps/noop.py``) as a new
process, in a fresh folder unless the row says otherwise, with Hydra's default
logging. The peers run in the same invocation: Hydra's BasicSweeper and, when
``--optuna-python`` names a Python that has ``hydra-optuna-sweeper`` (it pins
``optuna<3``, so ``make bench`` builds it a venv of its own), Hydra's Optuna
sweeper. Each figure is the median of ``--repeat`` runs.

Rows:

* ``--help``;
* a 1-job sweep in a fresh folder;
* a 10-job sweep, and the same command again (ivory: nothing left to run);
* 100 jobs (a 10x10 grid), whole wall time.

With ``--outage``, a 6-job sweep of 0.3 s jobs with MLflow off, with both stores,
and with the MLflow store (SQLite) locked by another process from the end of
the first job on (``hydra.sweeper.mlflow.timeout`` at its default).

Then MLflow's own cost (``import mlflow``, opening an existing store), which
bounds what mirroring can cost, Optuna's own (``import optuna``, creating a
fresh SQLite storage), the floor of a sweep with MLflow off, and the scaling
of ivory (MLflow off) to the ``--scale`` sizes: seconds per job, peak memory,
and resuming the finished sweep.
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

SWEEPERS = {
    "basic": ["hydra/sweeper=basic"],
    "ivory, both stores": ["hydra/sweeper=ivory", "hydra.sweeper.verbose=0"],
    "ivory, MLflow off": [
        "hydra/sweeper=ivory",
        "hydra.sweeper.verbose=0",
        "hydra.sweeper.mlflow.enabled=false",
    ],
    "optuna sweeper": ["hydra/sweeper=optuna", "hydra/sweeper/sampler=random"],
}


def grid(jobs: int) -> list[str]:
    """Overrides of a product with ``jobs`` points."""
    if jobs == 1:
        return ["+x=0", "+y=0"]
    side = 10 if jobs >= 100 else 1
    return [f"+x=range(0,{side})", f"+y=range(0,{jobs // side})"]


def optuna_args(jobs: int, folder: Path) -> list[str]:
    return [
        f"hydra.sweeper.n_trials={jobs}",
        f"hydra.sweeper.n_jobs={jobs}",
        f"hydra.sweeper.storage=sqlite:///{folder}/optuna.db",
        "hydra.sweeper.study_name=bench",
        "+x=range(0,10)",
        "+y=range(0,10)",
    ]


#: Runs a command and prints the peak memory (KB) of the largest process it waited for.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "capture_output=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def timed(args: list[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds of one command, and its peak memory (KB)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args], cwd=cwd, check=True, capture_output=True, env=env
    )
    return time.perf_counter() - start, int(done.stdout.split()[-1])


def command(python: str, sweeper: str, jobs: int | None, folder: Path) -> list[str]:
    base = [python, str(APP)]
    if jobs is None:
        return [*base, *SWEEPERS[sweeper], "--help"]
    tail = optuna_args(jobs, folder) if sweeper == "optuna sweeper" else grid(jobs)
    return [*base, "-m", *SWEEPERS[sweeper], *tail]


def median_of(repeat: int, run) -> float:  # noqa: ANN001 - a zero-argument callable
    return statistics.median(run() for _ in range(repeat))


def fresh(python: str, sweeper: str, jobs: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return timed(command(python, sweeper, jobs, Path(tmp)), Path(tmp))[0]


def again(python: str, sweeper: str, jobs: int) -> float:
    """The second run of the same command in the same folder."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        timed(command(python, sweeper, jobs, folder), folder)
        return timed(command(python, sweeper, jobs, folder), folder)[0]


def own_cost(python: str, module: str, use: str) -> tuple[float, float]:
    """A library's own cost in a new process: ``import module`` alone, and ``use``.

    ``use`` is Python code with ``{tmp}`` for a scratch folder; one untimed run
    first fills caches and creates what a later run opens.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        code = use.format(tmp=tmp)
        subprocess.run([python, "-c", code], check=True, capture_output=True)
        nothing = timed([python, "-c", "pass"], folder)[0]
        imported = timed([python, "-c", f"import {module}"], folder)[0]
        used = timed([python, "-c", code], folder)[0]
    return imported - nothing, used - nothing


#: Opening an existing MLflow SQLite store: what mirroring pays once per command.
OPEN_MLFLOW_STORE = (
    "from mlflow.tracking import MlflowClient as C; C('sqlite:///{tmp}/m.db').search_experiments()"
)
#: Creating a fresh Optuna SQLite storage: with MLflow off, the floor of a one-job
#: ivory sweep beyond BasicSweeper's start-up.
CREATE_OPTUNA_STORAGE = (
    "import optuna, uuid; optuna.storages.RDBStorage('sqlite:///{tmp}/' + uuid.uuid4().hex + '.db')"
)


def scaling(python: str, jobs: int) -> tuple[float, float, int]:
    """Ivory with MLflow off over ``jobs`` jobs: wall time, resume time, peak memory (KB)."""
    side = 100
    args = [python, str(APP), "-m", *SWEEPERS["ivory, MLflow off"]]
    args += [f"+x=range(0,{jobs // side})", f"+y=range(0,{side})"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        first, peak = timed([*args, "hydra.sweeper.max_batch_size=1000"], folder)
        resumed = timed([*args, "hydra.sweeper.max_batch_size=1000"], folder)[0]
    return first, resumed, peak


def outage(repeat: int) -> dict[str, float]:
    """Wall time of a 6-job sweep of 0.3 s jobs: MLflow off, on, and its store locked."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from sqlite_lock import sqlite_locked

    def sweep(name: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            record = folder / "record.jsonl"
            base = [sys.executable, str(Path(__file__).parents[1] / "tests/apps/sweep/app.py")]
            args = [*base, "-m", "a=0-5", "sleep=0.3", f"record={record}"]
            if name == "MLflow off":
                return timed([*args, "hydra.sweeper.mlflow.enabled=false"], folder)[0]
            from ivory_hydra.stores.mlflow_client import prepare_store

            prepare_store(f"sqlite:///{folder}/mlflow.db")
            if name == "both stores":
                return timed(args, folder)[0]
            with sqlite_locked(folder / "mlflow.db", when=(record, '"end"'), hold=300):
                return timed(args, folder)[0]

    names = ["MLflow off", "both stores", "MLflow store locked"]
    return {name: median_of(repeat, lambda name=name: sweep(name)) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", default="1000,10000", help="job counts ('' to skip)")
    parser.add_argument("--optuna-python", help="a Python with hydra-optuna-sweeper installed")
    parser.add_argument("--outage", action="store_true", help="only the locked-store case")
    args = parser.parse_args()
    if args.outage:
        took = outage(args.repeat)
        print(f"6 jobs of 0.3 s, median of {args.repeat}: ", end="")
        print(", ".join(f"{name} {seconds:.2f} s" for name, seconds in took.items()))
        return
    pythons = {name: sys.executable for name in SWEEPERS if name != "optuna sweeper"}
    if args.optuna_python:  # not resolved: a venv's python is a symlink
        pythons["optuna sweeper"] = os.path.abspath(args.optuna_python)
    # warm-up: caches (ivory's pristine MLflow store, .pyc files) are filled once per machine
    for sweeper, python in pythons.items():
        fresh(python, sweeper, 1)

    rows = {
        "app.py --help": lambda p, s: median_of(args.repeat, lambda: fresh(p, s, None)),
        "1-job sweep, fresh folder": lambda p, s: median_of(args.repeat, lambda: fresh(p, s, 1)),
        "10-job sweep": lambda p, s: median_of(args.repeat, lambda: fresh(p, s, 10)),
        "same 10-job command again": lambda p, s: median_of(args.repeat, lambda: again(p, s, 10)),
        "100 jobs (10x10 grid)": lambda p, s: median_of(args.repeat, lambda: fresh(p, s, 100)),
    }
    table: dict[str, dict[str, float]] = {}
    for row, measure in rows.items():
        table[row] = {}
        for sweeper, python in pythons.items():
            table[row][sweeper] = measure(python, sweeper)
            print(f"  measured {row} / {sweeper}: {table[row][sweeper]:.2f} s", flush=True)
    imported, opened = own_cost(sys.executable, "mlflow", OPEN_MLFLOW_STORE)
    optuna_imported, optuna_created = own_cost(sys.executable, "optuna", CREATE_OPTUNA_STORAGE)

    width = max(map(len, rows)) + 2
    names = list(pythons)
    print(f"\nWall time in seconds, median of {args.repeat}; (x) = ratio to BasicSweeper")
    print(f"{'what a user runs':<{width}}" + "".join(f"{n:>22}" for n in names))
    for row, cells in table.items():
        basic = cells["basic"]
        line = f"{row:<{width}}"
        for name in names:
            ratio = "" if name == "basic" else f" ({cells[name] / basic:.2f}x)"
            line += f"{cells[name]:>14.2f}{ratio:>8}"
        print(line)
    print(
        f"\nMLflow's own cost: import mlflow {imported:.2f} s, "
        f"open an existing store {opened:.2f} s"
    )
    print(
        f"Optuna's own cost: import optuna {optuna_imported:.2f} s, "
        f"import and create a fresh SQLite storage {optuna_created:.2f} s "
        f"(floor of a 1-job sweep with MLflow off: BasicSweeper + this = "
        f"{table['1-job sweep, fresh folder']['basic'] + optuna_created:.2f} s)"
    )
    basic = table["1-job sweep, fresh folder"]["basic"]
    help_time = table["app.py --help"]["basic"]
    goals = [
        (
            "1 job, both stores",
            table["1-job sweep, fresh folder"]["ivory, both stores"],
            basic + imported + opened + 0.5,
        ),
        ("1 job, MLflow off", table["1-job sweep, fresh folder"]["ivory, MLflow off"], 1.5 * basic),
        (
            "rerun, nothing left",
            table["same 10-job command again"]["ivory, both stores"],
            help_time + 0.5,
        ),
        (
            "100 jobs, both stores",
            table["100 jobs (10x10 grid)"]["ivory, both stores"],
            table["100 jobs (10x10 grid)"]["basic"],
        ),
        (
            "100 jobs, MLflow off",
            table["100 jobs (10x10 grid)"]["ivory, MLflow off"],
            0.6 * table["100 jobs (10x10 grid)"]["basic"],
        ),
        ("--help", table["app.py --help"]["ivory, both stores"], help_time + 0.05),
    ]
    print("\nGoals (issue 10):")
    for goal, measured, bound in goals:
        mark = "met" if measured <= bound else "not met"
        print(f"  {goal:<24} {measured:6.2f} s <= {bound:6.2f} s ? {mark}")

    sizes = [int(n) for n in args.scale.split(",") if n.strip()]
    if sizes:
        print("\nScaling, ivory with MLflow off (batches of 1000 jobs):")
        print(
            f"  {'jobs':>8} {'wall s':>9} {'ms/job':>8} {'peak MB':>8} {'resume s':>9}"
            f" {'resume/first':>13}"
        )
        for jobs in sizes:
            first, resumed, peak = scaling(sys.executable, jobs)
            print(
                f"  {jobs:>8} {first:>9.1f} {first / jobs * 1000:>8.1f} {peak / 1024:>8.0f}"
                f" {resumed:>9.2f} {resumed / first:>13.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

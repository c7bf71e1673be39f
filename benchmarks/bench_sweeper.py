"""What a user waits for: whole commands, start-up included, beside Hydra's own sweepers.

    python benchmarks/bench_sweeper.py [--repeat 3] [--scale 1000,10000] [--optuna-python PATH]

Every command runs the same no-op app (``benchmarks/apps/noop.py``) as a new
process, in a fresh folder unless the row says otherwise, with Hydra's default
logging. The peers run in the same invocation: Hydra's BasicSweeper and, when
``--optuna-python`` names a Python that has ``hydra-optuna-sweeper`` (it pins
``optuna<3``, so ``make bench`` builds it a venv of its own), Hydra's Optuna
sweeper. The sweepers run in turn, ``--repeat`` rounds: each figure is a median,
and each ratio the median of the rounds' ratios to BasicSweeper (a ratio holds
while the machine's speed drifts; these machines are noisy).

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
from dataclasses import dataclass
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


#: Runs a command; prints the peak memory (KB) of the largest process it waited for, and
#: the CPU seconds of all of them.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "capture_output=True); u = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(u.ru_maxrss, u.ru_utime + u.ru_stime)"
)


@dataclass
class Run:
    """One command, measured from outside: wall and CPU seconds, peak memory (KB)."""

    wall: float
    cpu: float
    peak: int


def timed(args: list[str], cwd: Path) -> Run:
    """Run one command to its end and measure it."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args], cwd=cwd, check=True, capture_output=True, env=env
    )
    wall = time.perf_counter() - start
    peak, cpu = done.stdout.split()[-2:]
    return Run(wall, float(cpu), int(peak))


def command(python: str, sweeper: str, jobs: int | None, folder: Path) -> list[str]:
    base = [python, str(APP)]
    if jobs is None:
        return [*base, *SWEEPERS[sweeper], "--help"]
    tail = optuna_args(jobs, folder) if sweeper == "optuna sweeper" else grid(jobs)
    return [*base, "-m", *SWEEPERS[sweeper], *tail]


def fresh(python: str, sweeper: str, jobs: int | None) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        return timed(command(python, sweeper, jobs, Path(tmp)), Path(tmp))


def again(python: str, sweeper: str, jobs: int) -> Run:
    """The second run of the same command in the same folder."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        timed(command(python, sweeper, jobs, folder), folder)
        return timed(command(python, sweeper, jobs, folder), folder)


@dataclass
class Cell:
    """One row's figures for one sweeper: medians, and the median of the ratios to
    BasicSweeper's run of the same round (the rounds run the sweepers in turn, so a
    ratio holds while the machine's speed drifts)."""

    wall: float
    cpu: float
    wall_ratio: float
    cpu_ratio: float


def interleaved(pythons: dict[str, str], repeat: int, measure) -> dict[str, Cell]:  # noqa: ANN001
    """``measure(python, sweeper)`` for every sweeper in turn, ``repeat`` rounds."""
    runs: dict[str, list[Run]] = {name: [] for name in pythons}
    for _ in range(repeat):
        for name, python in pythons.items():
            runs[name].append(measure(python, name))
    basic = runs["basic"]
    return {
        name: Cell(
            wall=statistics.median(r.wall for r in mine),
            cpu=statistics.median(r.cpu for r in mine),
            wall_ratio=statistics.median(r.wall / b.wall for r, b in zip(mine, basic, strict=True)),
            cpu_ratio=statistics.median(r.cpu / b.cpu for r, b in zip(mine, basic, strict=True)),
        )
        for name, mine in runs.items()
    }


def median_of(repeat: int, run) -> float:  # noqa: ANN001 - a zero-argument callable
    return statistics.median(run() for _ in range(repeat))


def own_cost(python: str, module: str, use: str) -> tuple[float, float]:
    """A library's own cost in a new process: ``import module`` alone, and ``use``.

    ``use`` is Python code with ``{tmp}`` for a scratch folder; one untimed run
    first fills caches and creates what a later run opens.
    """
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        code = use.format(tmp=tmp)
        subprocess.run([python, "-c", code], check=True, capture_output=True)
        nothing = timed([python, "-c", "pass"], folder).wall
        imported = timed([python, "-c", f"import {module}"], folder).wall
        used = timed([python, "-c", code], folder).wall
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
        first = timed([*args, "hydra.sweeper.max_batch_size=1000"], folder)
        resumed = timed([*args, "hydra.sweeper.max_batch_size=1000"], folder).wall
    return first.wall, resumed, first.peak


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
                return timed([*args, "hydra.sweeper.mlflow.enabled=false"], folder).wall
            from ivory_hydra.stores.mlflow_client import prepare_store

            prepare_store(f"sqlite:///{folder}/mlflow.db")
            if name == "both stores":
                return timed(args, folder).wall
            with sqlite_locked(folder / "mlflow.db", when=(record, '"end"'), hold=300):
                return timed(args, folder).wall

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
        "app.py --help": lambda p, s: fresh(p, s, None),
        "1-job sweep, fresh folder": lambda p, s: fresh(p, s, 1),
        "10-job sweep": lambda p, s: fresh(p, s, 10),
        "same 10-job command again": lambda p, s: again(p, s, 10),
        "100 jobs (10x10 grid)": lambda p, s: fresh(p, s, 100),
    }
    table: dict[str, dict[str, Cell]] = {}
    for row, measure in rows.items():
        table[row] = interleaved(pythons, args.repeat, measure)
        cells = ", ".join(f"{name} {cell.wall:.2f} s" for name, cell in table[row].items())
        print(f"  measured {row}: {cells}", flush=True)
    imported, opened = own_cost(sys.executable, "mlflow", OPEN_MLFLOW_STORE)
    optuna_imported, optuna_created = own_cost(sys.executable, "optuna", CREATE_OPTUNA_STORAGE)

    width = max(map(len, rows)) + 2
    names = list(pythons)
    print(
        f"\nWall time in seconds, median of {args.repeat} rounds that run the sweepers in "
        "turn; (x) = median of the rounds' ratios to BasicSweeper"
    )
    print(f"{'what a user runs':<{width}}" + "".join(f"{n:>22}" for n in names))
    for row, cells in table.items():
        line = f"{row:<{width}}"
        for name in names:
            ratio = "" if name == "basic" else f" ({cells[name].wall_ratio:.2f}x)"
            line += f"{cells[name].wall:>14.2f}{ratio:>8}"
        print(line)
    hundred = table["100 jobs (10x10 grid)"]
    line = f"{'  the same, CPU seconds':<{width}}"
    for name in names:
        ratio = "" if name == "basic" else f" ({hundred[name].cpu_ratio:.2f}x)"
        line += f"{hundred[name].cpu:>14.2f}{ratio:>8}"
    print(line)
    print(
        f"\nMLflow's own cost: import mlflow {imported:.2f} s, "
        f"import and open an existing store {opened:.2f} s"
    )
    print(
        f"Optuna's own cost: import optuna {optuna_imported:.2f} s, "
        f"import and create a fresh SQLite storage {optuna_created:.2f} s"
    )
    one = table["1-job sweep, fresh folder"]
    basic = one["basic"].wall
    goals = [
        (
            "1 job, both stores",
            f"{one['ivory, both stores'].wall:.2f} s",
            f"basic + MLflow's import-and-open + 0.5 s = {basic + opened + 0.5:.2f} s",
            one["ivory, both stores"].wall <= basic + opened + 0.5,
        ),
        (
            "1 job, MLflow off",
            f"{one['ivory, MLflow off'].wall:.2f} s",
            f"basic + Optuna's import-and-create + 0.2 s = {basic + optuna_created + 0.2:.2f} s",
            one["ivory, MLflow off"].wall <= basic + optuna_created + 0.2,
        ),
        (
            "rerun, nothing left",
            f"{table['same 10-job command again']['ivory, both stores'].wall:.2f} s",
            f"basic --help + 0.5 s = {table['app.py --help']['basic'].wall + 0.5:.2f} s",
            table["same 10-job command again"]["ivory, both stores"].wall
            <= table["app.py --help"]["basic"].wall + 0.5,
        ),
        (
            "100 jobs, both stores",
            f"{hundred['ivory, both stores'].wall_ratio:.2f}x wall, "
            f"{hundred['ivory, both stores'].cpu_ratio:.2f}x CPU",
            "1.0x basic (then 0.8x)",
            hundred["ivory, both stores"].wall_ratio <= 1.0,
        ),
        (
            "--help",
            f"{table['app.py --help']['ivory, both stores'].wall_ratio:.2f}x",
            "basic's, with MLflow not imported",
            table["app.py --help"]["ivory, both stores"].wall_ratio <= 1.05,
        ),
    ]
    print("\nGoals (issue 24):")
    for goal, measured, bound, met in goals:
        print(f"  {goal:<22} {measured:<22} bound: {bound:<52} {'met' if met else 'not met'}")

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

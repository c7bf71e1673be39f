"""Pruning across repeats: what it saves when half of the configurations are poor.

    python benchmarks/bench_pruning.py [--configs 10] [--folds 5] [--sleep 0.3]

Runs the same cross validation (``x=0..configs-1`` crossed with ``fold=0..folds-1``,
every job ``sleep`` seconds (1 by default), odd ``x`` poor) three ways, each a whole command in a
fresh folder, MLflow off:

- Hydra's BasicSweeper, which runs every job (the peer);
- ivory with ``repeat: [fold]``, which runs every job too and scores each
  configuration by the mean of its folds;
- ivory with ``repeat: [fold]`` and Optuna's MedianPruner, which stops a poor
  configuration after its second fold.

It prints the jobs each ran and the wall time, with the ratio to BasicSweeper.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APP = Path(__file__).parent / "apps" / "folds.py"
PRUNER = "{_target_: optuna.pruners.MedianPruner, n_startup_trials: 2, n_warmup_steps: 1}"


def run(extra: list[str], configs: int, folds: int, sleep: float) -> tuple[float, int]:
    """Wall time and number of jobs of one whole command in a fresh folder."""
    args = [
        sys.executable,
        str(APP),
        "-m",
        "hydra.sweep.dir=sweep",
        "hydra.sweep.subdir=${hydra.job.num}",
        f"+x=range(0,{configs})",
        f"+fold=range(0,{folds})",
        f"+sleep={sleep}",
        *extra,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        done = subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=1800)
        elapsed = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"{' '.join(extra)} failed:\n{done.stderr[-3000:]}")
        jobs = sum(1 for p in (Path(tmp) / "sweep").iterdir() if p.is_dir())
    return elapsed, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=1.0)
    args = parser.parse_args()
    ivory = ["hydra/sweeper=ivory", "hydra.sweeper.mlflow.enabled=false", "hydra.sweeper.verbose=0"]
    repeat = [*ivory, "hydra.sweeper.repeat=[fold]"]
    ways = {
        "BasicSweeper": ["hydra/sweeper=basic"],
        "ivory, repeat: [fold]": repeat,
        "ivory, repeat + MedianPruner": [*repeat, f"hydra.sweeper.pruner={PRUNER}"],
    }
    sizes = (args.configs, args.folds, args.sleep)
    results = {name: run(extra, *sizes) for name, extra in ways.items()}
    base = results["BasicSweeper"][0]
    print(
        f"{args.configs} configurations x {args.folds} folds, jobs of {args.sleep} s, "
        "half of the configurations poor:"
    )
    print(f"{'sweep':<30} {'jobs':>5} {'seconds':>8} {'ratio':>7}")
    for name, (seconds, jobs) in results.items():
        print(f"{name:<30} {jobs:>5} {seconds:>8.1f} {seconds / base:>6.2f}x")


if __name__ == "__main__":
    main()

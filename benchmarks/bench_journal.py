"""Heartbeats and a journal storage: 1,000 job-hours of beats, in the journal and on the board.

    python benchmarks/bench_journal.py [--jobs 1000] [--hours 1] [--interval 10]

Makes a sweep's trials in a journal file (``open_storage``, ``Study``,
``trials.claim``, as a sweep does), then writes every beat that ``jobs`` jobs
of ``hours`` hours make at ``interval`` seconds, twice, in two journals:

* before: as ivory-hydra 0.2 did, a trial system attribute per beat, appended
  to the journal (a sample through ``storage.set_trial_system_attr``, timed;
  the rest as the same records, appended in batches to save the fsyncs);
* after: through ``trials.beat`` (the beats board, ``<journal>.beats/``).

Then finishes every trial and prints, for each, the journal's size and the
time a fresh process takes to open a ``JournalStorage`` on it (median of 3),
and the cost of one beat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ivory_hydra.core.outcomes import Outcome
from ivory_hydra.stores import trials
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.format import BEAT
from ivory_hydra.stores.liveness import beat_record
from ivory_hydra.stores.optuna_storage import open_storage
from ivory_hydra.stores.study import Study, TrialSpec

OPEN = """
import sys, time
from optuna.storages.journal import JournalFileBackend, JournalStorage
start = time.perf_counter()
storage = JournalStorage(JournalFileBackend(sys.argv[1]))
storage.get_all_studies()
print(time.perf_counter() - start)
"""
SAMPLE = 2000  # beats written the old way through Optuna's own call, timed


def sweep(path: Path, jobs: int) -> tuple[object, list[int]]:
    storage = open_storage(str(path))
    study = Study.open(storage, "bench", "minimize")
    dists = distributions_for({"x": list(range(jobs))})
    specs = [TrialSpec({"x": i}, dists, {"slot": f"0.{i}"}) for i in range(jobs)]
    ids = [trial_id for trial_id, _ in study.create_trials(specs)]
    for trial_id in ids:
        trials.claim(storage, trial_id)
    return storage, ids


def finish(storage: object, ids: list[int]) -> None:
    for trial_id in ids:
        trials.finish(storage, trial_id, Outcome("complete", 1.0))


def open_time(path: Path) -> float:
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", OPEN, str(path)], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(3)
    ]
    return statistics.median(runs)


def before(path: Path, jobs: int, beats: int) -> float:
    """Beats as trial system attributes in the journal; returns seconds per beat."""
    storage, ids = sweep(path, jobs)
    total, written = beats * jobs, 0
    start = time.perf_counter()
    for trial_id in ids * (SAMPLE // jobs + 1):
        if written == min(SAMPLE, total):
            break
        storage.set_trial_system_attr(trial_id, BEAT, beat_record())
        written += 1
    per_beat = (time.perf_counter() - start) / max(written, 1)
    template = json.loads(path.read_bytes().splitlines()[-1])  # the record Optuna wrote
    assert BEAT in template["system_attr"], template
    backend = storage._backend  # noqa: SLF001 - a benchmark: append the same records fast
    batch = []
    for n in range(written, total):
        record = dict(template, trial_id=ids[n % jobs])
        record["system_attr"] = {BEAT: beat_record()}
        batch.append(record)
        if len(batch) == 5000:
            backend.append_logs(batch)
            batch = []
    if batch:
        backend.append_logs(batch)
    finish(storage, ids)
    return per_beat


def after(path: Path, jobs: int, beats: int) -> tuple[float, int, int]:
    """Beats through trials.beat; returns seconds per beat and the board's peak files, bytes."""
    storage, ids = sweep(path, jobs)
    start = time.perf_counter()
    for _ in range(beats):
        for trial_id in ids:
            trials.beat(storage, trial_id)
    per_beat = (time.perf_counter() - start) / (beats * jobs)
    board = Path(str(path) + ".beats")
    files = list(board.iterdir())
    peak = (len(files), sum(f.stat().st_size for f in files))
    finish(storage, ids)
    return per_beat, *peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    beats = round(args.hours * 3600 / args.interval)
    print(
        f"{args.jobs} jobs of {args.hours:g} h, a beat every {args.interval:g} s: "
        f"{beats * args.jobs:,} beats"
    )
    with tempfile.TemporaryDirectory() as tmp:
        old, new = Path(tmp, "before.journal"), Path(tmp, "after.journal")
        old_beat = before(old, args.jobs, beats)
        new_beat, files, board_bytes = after(new, args.jobs, beats)
        rows = [
            ("before (trial system attrs)", old, old_beat, "-"),
            ("after (beats board)", new, new_beat, f"{files} files, {board_bytes / 1e3:.0f} KB"),
        ]
        print(f"{'':30} {'journal':>10} {'open':>8} {'one beat':>10}  board at its peak")
        for name, path, per_beat, board in rows:
            size = path.stat().st_size / 1e6
            print(
                f"{name:30} {size:8.1f} MB {open_time(path):6.2f} s "
                f"{per_beat * 1e3:7.2f} ms  {board}"
            )


if __name__ == "__main__":
    main()

"""What "both stores complete and in agreement" means, checked after faults.

Used by the recovery and chaos tests: the app's own record of what ran
(tests/apps/sweep/app.py ``record=``), the Optuna storage and the MLflow store
are read and compared.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
from mlflow.tracking import MlflowClient

from ivory_hydra.stores.format import StudyAttr, Tag, TrialAttr

EXPECTED_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}


def records(path: Path, event: str = "end") -> list[dict]:
    """The app's own records of the jobs that started (or ended)."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [e for e in map(json.loads, lines) if e["event"] == event]


def storage_of(url: str) -> object:
    """What Optuna opens for a storage URL, a gRPC proxy or a journal file."""
    if url.startswith("grpc://"):
        from optuna.storages import GrpcStorageProxy

        host, port = url[len("grpc://") :].rsplit(":", 1)
        with warnings.catch_warnings():  # experimental since Optuna 4.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return GrpcStorageProxy(host=host, port=int(port))
    if "://" in url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(url))


def only_study(url: str) -> optuna.Study:
    [summary] = optuna.get_all_study_summaries(storage_of(url))
    return optuna.load_study(study_name=summary.study_name, storage=storage_of(url))


def check_converged(
    url: str,
    tracking_uri: str,
    record: Path,
    jobs: Iterable[Hashable],
    killed: Iterable[int] = (),
    key: str | tuple[str, ...] = "a",
) -> optuna.Study:
    """Both stores complete and in agreement with each other and with what ran.

    A job is named by the value of its param ``key`` (by default ``a``), or by the
    tuple of the values of its params ``key`` (a chain's jobs: ``("a", "b")``).

    - every job ended; one ended twice only if the process of its first run was killed;
    - no trial RUNNING or WAITING; each job has one COMPLETE trial; numbers unique;
    - one MLflow parent run, FINISHED, with the summary; one child run per trial,
      with the trial's status and score; nothing RUNNING;
    - the study says the sweep finished and MLflow is in line with it.
    """
    jobs, killed = list(jobs), set(killed)

    def job(values: Mapping[str, Any]) -> Hashable:
        return values[key] if isinstance(key, str) else tuple(values[k] for k in key)

    ended: dict[Hashable, list[dict]] = {}
    for event in records(record):
        ended.setdefault(job(event), []).append(event)
    assert sorted(ended) == sorted(jobs), f"jobs that never ended: {set(jobs) - set(ended)}"
    for name, ends in ended.items():
        again = [e for e in ends[:-1] if e["pid"] not in killed]
        assert not again, f"job {name} ended {len(ends)} times, its first run was not killed"

    study = only_study(url)
    trials = study.trials
    unfinished = [(t.number, t.state.name) for t in trials if not t.state.is_finished()]
    assert not unfinished, f"unfinished trials: {unfinished}"
    complete = Counter(job(t.params) for t in trials if t.state.name == "COMPLETE")
    assert complete == Counter(jobs), f"COMPLETE trials per job: {complete}"
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    names = [t.user_attrs[TrialAttr.RUN_NAME] for t in trials]
    assert len(set(names)) == len(names), "a run number was used twice"
    summary = study.user_attrs[StudyAttr.SUMMARY]
    assert summary["finished"] and summary["total"] == len(jobs), summary
    assert study.user_attrs.get(StudyAttr.MIRROR_SYNCED) is True

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("app")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    parents = [r for r in runs if Tag.PARENT not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    assert parents[0].info.status == "FINISHED" and "best_score" in parents[0].data.metrics
    children = {int(r.data.tags[Tag.TRIAL_NUMBER]): r for r in runs if Tag.PARENT in r.data.tags}
    assert len(children) == len(runs) - 1, "two runs for one trial"
    assert sorted(children) == sorted(t.number for t in trials), "trials and runs differ"
    for trial in trials:
        run = children[trial.number]
        expected = EXPECTED_STATUS.get(trial.state.name)
        if expected is None:  # FAIL: interrupted (or left by a budget) runs were killed
            interrupted = trial.user_attrs.get(TrialAttr.ERROR) in ("Interrupted", "BudgetSpent")
            expected = "KILLED" if interrupted else "FAILED"
        assert run.info.status == expected, (trial.number, trial.state.name, run.info.status)
        if trial.state.name == "COMPLETE":
            assert run.data.metrics.get("score") == trial.value, (trial.number, run.data.metrics)
    return study

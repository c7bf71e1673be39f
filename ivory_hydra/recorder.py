"""Numbering, recording and mirroring runs: the one piece both front ends call.

A :class:`Recorder` owns one task (a sweep, or a task of the Python API): its
Optuna study, its task number, and its MLflow parent run. ``start`` numbers a
batch of runs and opens a RUNNING trial and an MLflow child run for each;
``finish`` closes both with the run's outcome.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.plan import Point, best_index
from ivory_hydra.redact import redact_url
from ivory_hydra.scores import Outcome
from ivory_hydra.store import (
    StudyHandle,
    allocate_numbers,
    open_storage,
    open_study,
)

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from ivory_hydra.mirror import MlflowMirror

TASK_ATTR = "task_name"
PARENT_ATTR = "mlflow_parent_run_id"
DECISIONS_ATTR = "chain_decisions"


@dataclass
class RunRecord:
    """One numbered run: its trial, its MLflow run and its params."""

    number: int
    point: Point
    params: dict[str, Any]
    trial_id: int
    trial_number: int
    mlflow_run_id: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``run#N``, numbered across the experiment."""
        return f"run#{self.number}"


@dataclass(frozen=True)
class Best:
    """The best finished run of a task."""

    run_name: str
    score: float
    params: dict[str, Any]
    trial_number: int
    attrs: dict[str, Any]


class Recorder:
    """Records the runs of one task in Optuna and mirrors them to MLflow."""

    def __init__(
        self,
        *,
        storage_url: str,
        experiment: str,
        study_name: str,
        task_name: str | None = None,
        direction: str = "minimize",
        metric: str | None = None,
        distributions: Mapping[str, BaseDistribution],
        mirror: MlflowMirror | None = None,
        study_attrs: Mapping[str, Any] | None = None,
        parent_tags: Mapping[str, str] | None = None,
    ) -> None:
        self.storage_url = storage_url
        self.experiment = experiment
        self.direction = direction
        self.metric = metric
        self.distributions = dict(distributions)
        self.mirror = mirror
        self.storage = open_storage(storage_url)
        self.study_name = study_name
        self._study_attrs = dict(study_attrs or {})
        self._parent_tags = dict(parent_tags or {})
        self.study: StudyHandle | None = None
        self.task_name = task_name or ""
        self.parent_run_id: str | None = None

    # ------------------------------------------------------------ task

    def open(self) -> Recorder:
        """Create or load the study, number the task, and open the MLflow parent run.

        A new study gets the next task number of its experiment, unless the
        caller numbered the task already (the task API numbers at create_task).
        """
        study = open_study(self.storage, self.study_name, self.direction, self.metric)
        self.study = study
        attrs = study.user_attrs
        if study.created or TASK_ATTR not in attrs:
            if not self.task_name:
                number = allocate_numbers(self.storage, self.experiment, "task", 1)
                self.task_name = f"task#{number}"
            for key, value in {
                **self._study_attrs,
                "experiment": self.experiment,
                TASK_ATTR: self.task_name,
            }.items():
                study.set_attr(key, value)
        else:
            self.task_name = attrs[TASK_ATTR]
        if self.mirror is not None:
            tags = {
                **self._parent_tags,
                "ivory.study_name": study.name,
                "ivory.storage": redact_url(self.storage_url),
            }
            self.parent_run_id = self.mirror.open_parent(
                self.task_name, tags, run_id=attrs.get(PARENT_ATTR)
            )
            if attrs.get(PARENT_ATTR) != self.parent_run_id:
                study.set_attr(PARENT_ATTR, self.parent_run_id)
        return self

    def _study(self) -> StudyHandle:
        if self.study is None:
            raise RuntimeError("call Recorder.open() first")
        return self.study

    # ------------------------------------------------------------ runs

    def start(
        self,
        points: Sequence[Point],
        params: Sequence[Mapping[str, Any]] | None = None,
        attrs: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[RunRecord]:
        """Number a batch of runs and open a trial and an MLflow child for each.

        ``params`` are the values to record (the points' own params by default);
        ``attrs`` are extra trial user attributes, also tagged on the child run.
        """
        study = self._study()
        if not points:
            return []
        params = params or [p.params for p in points]
        attrs = attrs or [{} for _ in points]
        first = allocate_numbers(self.storage, self.experiment, "run", len(points))
        records = []
        for offset, (point, values, extra) in enumerate(zip(points, params, attrs, strict=True)):
            run_name = f"run#{first + offset}"
            user_attrs = {"run_name": run_name, "slot": point.slot, "step": point.step, **extra}
            # The child run first, so that its id goes into the trial as it is created;
            # the child learns its trial number when it finishes.
            run_id = self._create_child(run_name, values, user_attrs)
            if run_id is not None:
                user_attrs["mlflow_run_id"] = run_id
            distributions = {k: self.distributions[k] for k in values}
            trial_id, trial_number = study.start_trial(values, distributions, user_attrs)
            record = RunRecord(
                first + offset, point, dict(values), trial_id, trial_number, run_id, user_attrs
            )
            records.append(record)
        return records

    def _create_child(
        self, run_name: str, params: Mapping[str, Any], attrs: Mapping[str, Any]
    ) -> str | None:
        if self.mirror is None or self.parent_run_id is None:
            return None
        from ivory_hydra.mirror import ChildSpec

        tags = {f"ivory.{k}": str(v) for k, v in attrs.items()}
        tags["ivory.study_name"] = self.study_name
        return self.mirror.create_child(self.parent_run_id, ChildSpec(run_name, params, tags))

    def finish(
        self,
        record: RunRecord,
        outcome: Outcome,
        attrs: Mapping[str, Any] | None = None,
        closed_failed: bool | None = None,
    ) -> None:
        """Close a run's trial and MLflow child with its outcome.

        ``closed_failed`` says how the job itself already ended its child run
        (None: not ended); the run is ended again only if that differs.
        """
        study = self._study()
        user_attrs = dict(attrs or {})
        if outcome.reason:
            user_attrs["reason"] = outcome.reason
        study.finish_trial(record.trial_id, outcome.state, outcome.score, user_attrs)
        record.attrs.update(user_attrs)
        if self.mirror is not None and record.mlflow_run_id is not None:
            metrics = {}
            if outcome.score is not None:
                metrics[self.metric or "score"] = outcome.score
            tags = {f"ivory.{k}": str(v) for k, v in user_attrs.items()}
            tags["ivory.state"] = outcome.state
            tags["ivory.trial_number"] = str(record.trial_number)
            self.mirror.finish_child(
                record.mlflow_run_id,
                failed=outcome.failed,
                metrics=metrics,
                tags=tags,
                terminate=closed_failed is None or closed_failed != outcome.failed,
            )

    def logged_score(self, record: RunRecord) -> float | None:
        """The last value of the metric that the run logged to its MLflow child run."""
        if self.metric is None or self.mirror is None or record.mlflow_run_id is None:
            return None
        return self.mirror.latest_metric(record.mlflow_run_id, self.metric)

    # ------------------------------------------------------------ reading back

    def finished_by_slot(self) -> dict[str, FrozenTrial]:
        """The finished (complete or unscored) trial of each slot, for resume."""
        from optuna.trial import TrialState

        done = {}
        for trial in self._study().trials():
            if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
                done.setdefault(trial.user_attrs.get("slot"), trial)
        return done

    def step_scores(self, step: int, size: int) -> list[float | None]:
        """Each run's score in one step, read from the store (None if unscored or failed)."""
        from optuna.trial import TrialState

        scores: list[float | None] = [None] * size
        for trial in self._study().trials():
            if trial.user_attrs.get("step") != step or trial.state != TrialState.COMPLETE:
                continue
            index = int(str(trial.user_attrs["slot"]).split(".")[1])
            if 0 <= index < size and scores[index] is None:
                scores[index] = trial.value
        return scores

    @property
    def decisions(self) -> dict[str, int]:
        """Chain decisions already made: param name -> index of the winning value."""
        return dict(self._study().user_attrs.get(DECISIONS_ATTR, {}))

    def decide(self, name: str, index: int) -> None:
        """Record that ``name`` is fixed at its ``index``-th value from now on."""
        decisions = self.decisions
        decisions[name] = index
        self._study().set_attr(DECISIONS_ATTR, decisions)

    def best(self) -> Best | None:
        """The best complete run; ties go to the earliest."""
        from optuna.trial import TrialState

        trials = [t for t in self._study().trials() if t.state == TrialState.COMPLETE]
        index = best_index([t.value for t in trials], self.direction)
        if index is None:
            return None
        trial = trials[index]
        assert trial.value is not None
        return Best(
            trial.user_attrs.get("run_name", f"trial#{trial.number}"),
            trial.value,
            dict(trial.params),
            trial.number,
            dict(trial.user_attrs),
        )

    def counts(self) -> dict[str, int]:
        """How many trials ended in each state (lower-case names)."""
        counts: dict[str, int] = {}
        for trial in self._study().trials():
            key = trial.state.name.lower()
            counts[key] = counts.get(key, 0) + 1
        return counts

    def discard(self, records: Sequence[RunRecord]) -> None:
        """Undo a task that must not have started: delete its study and MLflow runs.

        Only a study created by this recorder is deleted; the numbers it took
        from the experiment's ledger stay taken.
        """
        study = self._study()
        if self.mirror is not None and self.parent_run_id is not None:
            runs = [r.mlflow_run_id for r in records if r.mlflow_run_id]
            parent = [self.parent_run_id] if study.created else []
            self.mirror.delete_runs([*runs, *parent])
        if study.created:
            self.storage.delete_study(study.study_id)

    def close(
        self,
        *,
        failed: bool = False,
        artifacts: Sequence[Path] = (),
        tags: Mapping[str, str] | None = None,
        best: Best | None = None,
    ) -> Best | None:
        """Write the best run to the MLflow parent and close it; return the best.

        ``best`` saves reading the trials again when the caller has it already.
        """
        best = best or self.best()
        if self.mirror is not None and self.parent_run_id is not None:
            metrics = {}
            params: dict[str, Any] = {}
            all_tags = dict(tags or {})
            if best is not None and math.isfinite(best.score):
                metrics[f"best_{self.metric or 'score'}"] = best.score
                params = best.params
                all_tags["ivory.best_run"] = best.run_name
            self.mirror.close_parent(
                self.parent_run_id,
                params=params,
                metrics=metrics,
                tags=all_tags,
                artifacts=artifacts,
                failed=failed,
            )
        return best

"""What a sweep's runs came to: finished runs, the scoreboard, the summary.

Read from the storage only: a :class:`Finished` is a finished trial, and the
:class:`Scoreboard` is what every process can rebuild from the study.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.budgets import Stop
from ivory_hydra.core.objectives import Objectives
from ivory_hydra.core.outcomes import COMPLETE, FAIL, Outcome
from ivory_hydra.stores import trials
from ivory_hydra.stores.format import TrialAttr

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class Finished:
    """A finished run as the storage records it."""

    run_name: str
    number: int
    slot: str
    outcome: Outcome
    params: dict[str, Any]
    attrs: dict[str, Any]

    @property
    def score(self) -> float | None:
        """The run's score (None for a failed or unscored run)."""
        return self.outcome.score

    @property
    def std(self) -> float | None:
        """With repeats: the standard deviation of the configuration's repeats' scores."""
        value = self.attrs.get(TrialAttr.STD)
        return None if value is None else float(value)

    @property
    def repeats(self) -> int:
        """With repeats: how many of the configuration's repeats scored (else 0)."""
        records = trials.repeat_records_of(self.attrs).values()
        return sum(1 for record in records if record.get("state") == COMPLETE)

    def as_dict(self) -> dict[str, Any]:
        """The run (or configuration) as ``results.yaml`` shows it."""
        shown: dict[str, Any] = {"run": self.run_name, "score": self.outcome.score}
        if TrialAttr.REPEATS in self.attrs:
            shown.update(std=self.std, n=self.repeats)
        return {**shown, "params": self.params, "trial_number": self.number}

    @classmethod
    def from_trial(cls, trial: FrozenTrial) -> Finished:
        """Read a finished trial."""
        outcome = trials.trial_outcome(trial)
        assert outcome is not None, "the trial is not finished"
        return cls(
            str(trial.user_attrs.get(TrialAttr.RUN_NAME, f"trial#{trial.number}")),
            trial.number,
            str(trial.user_attrs.get(TrialAttr.SLOT)),
            outcome,
            dict(trial.params),
            dict(trial.user_attrs),
        )


@dataclass
class Summary:
    """What a sweep (or task) came to: the best run, the decisions, the failures."""

    task: str
    total: int
    best: Finished | None = None
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    failed: list[Finished] = field(default_factory=list)
    pareto: list[Finished] = field(default_factory=list)  # with several objectives
    repeats: int = 0  # how many repeats each configuration has (0: no repeats)
    configurations: list[Finished] = field(default_factory=list)  # with repeats
    left: int = 0  # runs (configurations) of the plan not finished: a resume runs them
    stopped_by: Stop | None = None  # the budget that stopped this invocation, if one did

    @property
    def finished(self) -> bool:
        """Every run of the plan finished, none failed."""
        return not self.failed and sum(self.counts.values()) == self.total

    @property
    def status(self) -> str:
        """The MLflow status of the sweep's parent run when it ends now (KILLED: a
        budget stopped it before the end)."""
        if self.failed:
            return "FAILED"
        return "KILLED" if self.stopped_by is not None and self.left else "FINISHED"

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``results.yaml`` and the study's ``summary`` attribute."""
        best = None
        if self.best is not None:
            best = {
                **self.best.as_dict(),
                "overrides": self.best.attrs.get(TrialAttr.OVERRIDES),
                "output_dir": self.best.attrs.get(TrialAttr.OUTPUT_DIR),
            }
        extra: dict[str, Any] = {}
        if self.repeats:
            extra = {
                "repeats": self.repeats,
                "configurations": [
                    {**c.as_dict(), "state": c.outcome.state} for c in self.configurations
                ],
            }
        return {
            "task": self.task,
            "total": self.total,
            "finished": self.finished,
            **extra,
            "best": best,
            "pareto": [
                {"run": f.run_name, "values": list(f.outcome.values or ()), "params": f.params}
                for f in self.pareto
            ],
            "decisions": self.decisions,
            "runs": self.counts,
            "stopped_by": None
            if self.stopped_by is None
            else {**self.stopped_by.as_dict(), "left": self.left},
            "failed": [
                {
                    "run": f.run_name,
                    "trial_number": f.number,
                    "reason": f.outcome.reason,
                    "overrides": f.attrs.get(TrialAttr.OVERRIDES),
                    "traceback": f.attrs.get(TrialAttr.TRACEBACK),
                }
                for f in self.failed
            ],
        }


def stop_status(error: BaseException) -> str:
    """The status of a sweep's (or task's) MLflow parent run when ``error`` stopped it.

    >>> stop_status(KeyboardInterrupt()), stop_status(ValueError())
    ('KILLED', 'FAILED')
    """
    return "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"


class Scoreboard:
    """Which slots of the plan finished, the latest failure of the others, and the best run.

    A failed run's slot runs again on resume; with ``final_failures`` (optimize
    mode, where a failed sample is spent) only one that was interrupted does. A
    run that a budget left unrun is no failure: its slot is ``left``, and runs
    again too.
    """

    def __init__(self, objectives: Objectives, *, final_failures: bool = False) -> None:
        self.objectives = objectives
        self.final_failures = final_failures
        self.done: dict[str, Finished] = {}  # slot -> its complete or unscored run
        self.failed: dict[str, Finished] = {}  # slot -> its latest failed run
        self.left: dict[str, Finished] = {}  # slot -> its run a budget left unrun (latest)
        self.kept: dict[str, dict[int, dict[str, Any]]] = {}  # slot -> its finished repeats
        self.best: Finished | None = None

    def note(self, run: Finished) -> None:
        """Count a finished run (with repeats, a configuration: its finished repeats are kept)."""
        for index, record in trials.repeat_records_of(run.attrs).items():
            if record.get("state") != FAIL:
                self.kept.setdefault(run.slot, {})[index] = record
        if run.outcome.left:
            if run.slot not in self.done:
                self.left[run.slot] = run
            return
        self.left.pop(run.slot, None)
        if run.outcome.state == FAIL:
            if self.final_failures and not run.outcome.interrupted:
                self.done.setdefault(run.slot, run)  # spent: not run again, still a failure
            if run.slot not in self.done or self.done[run.slot] is run:
                self.failed[run.slot] = run
            return
        if run.outcome.state != FAIL:
            self.failed.pop(run.slot, None)
        self.done.setdefault(run.slot, run)
        if run.outcome.state == COMPLETE and self.objectives.single and self._beats_best(run):
            self.best = run

    def note_all(self, runs: Iterable[Finished]) -> None:
        """Count finished runs."""
        for run in runs:
            self.note(run)

    def _beats_best(self, run: Finished) -> bool:
        if self.best is None:
            return True
        new, old = run.outcome.score, self.best.outcome.score
        assert new is not None and old is not None
        if new == old:
            return run.number < self.best.number
        return self.objectives.better(new, old)

    def score_of(self, slot: str) -> float | None:
        """The score of a slot's run (None: failed, unscored or not run)."""
        run = self.done.get(slot)
        return run.outcome.score if run is not None and run.outcome.state == COMPLETE else None

    def summary(
        self, task: str, total: int, decisions: dict[str, dict[str, Any]], repeats: int = 0
    ) -> Summary:
        """The summary so far (``repeats``: how many each configuration has, if any)."""
        counts: dict[str, int] = {}
        for run in self.done.values():
            counts[run.outcome.state] = counts.get(run.outcome.state, 0) + 1
        if self.failed:
            counts[FAIL] = len(self.failed)
        failed = sorted(self.failed.values(), key=lambda r: r.number)
        pareto: list[Finished] = []
        if not self.objectives.single:
            scored = sorted(
                (r for r in self.done.values() if r.outcome.values is not None),
                key=lambda r: r.number,
            )
            front = self.objectives.pareto_front([r.outcome.values or () for r in scored])
            pareto = [scored[i] for i in front]
        configurations = sorted(self.done.values(), key=lambda r: r.number) if repeats else []
        return Summary(
            task,
            total,
            self.best,
            dict(decisions),
            counts,
            failed,
            pareto,
            repeats,
            configurations,
            max(0, total - len(self.done)),
        )

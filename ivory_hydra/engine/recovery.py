"""Recovery: read what the storage holds, fail what dead processes left, settle MLflow.

Everything here is derived from the storage, and safe to do again: a trial
left WAITING or RUNNING by a process that died is failed (its job runs again),
one a live process still runs is waited for, and MLflow is brought in line
with the trials (statuses, scores, missing runs) by whoever opens or closes a
sweep. Nothing is decided from MLflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ivory_hydra._compat import frozen_trial_id
from ivory_hydra.core.outcomes import FAIL, INTERRUPTED, Outcome
from ivory_hydra.engine.results import Finished
from ivory_hydra.engine.state import EngineState
from ivory_hydra.signals import shielded
from ivory_hydra.stores import trials
from ivory_hydra.stores.format import OWNER, StudyAttr, Tag, TrialAttr, attr_tag, score_metrics
from ivory_hydra.stores.liveness import describe, is_stale
from ivory_hydra.stores.mlflow_mirror import ChildSpec, run_status

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

log = logging.getLogger(__name__)


class Recovery(EngineState):
    """Reading back, reaping and settling (a part of the engine)."""

    @shielded()
    def load(self) -> int:
        """Read what earlier runs of this study left; return how many runs are done.

        MLflow runs left RUNNING whose trials have finished are ended as the
        trials say (a process stopped while it ended its run).
        """
        stored = self.study.user_attrs.get(StudyAttr.DECISIONS) or {}
        self.decisions = {str(k): dict(v) for k, v in stored.items() if isinstance(v, Mapping)}
        self.read(self.study.trials())
        if not self.study.created:
            self.settle_running_runs()
        return self.done

    @shielded()
    def refresh(self) -> None:
        """Read the trials again (others' results; after a worker died, its trials)."""
        self.read(self.study.trials())

    def read(self, stored: Iterable[FrozenTrial]) -> None:
        """Count finished trials; fail those of dead processes; note those run elsewhere."""
        from optuna.trial import TrialState

        for trial in stored:
            slot = trial.user_attrs.get(TrialAttr.SLOT)
            if slot is None:
                continue
            if trial.state.is_finished():
                self.board.note(Finished.from_trial(trial))
            elif trial.state == TrialState.WAITING:
                owner = trial.system_attrs.get(OWNER)
                if trial.number in self.mine:
                    continue  # handed out by this process, not yet started
                if not (isinstance(owner, Mapping) and self.coordination.owner_lives(owner)):
                    self._reap(trial, None)
            else:
                record = trials.last_beat(self.study.storage, trial)
                if is_stale(record, self.settings.grace_period):
                    self._reap(trial, record)
                elif trial.number not in self.mine:
                    self.elsewhere[str(slot)] = frozen_trial_id(trial)

    def _reap(self, trial: FrozenTrial, record: Mapping[str, Any] | None) -> None:
        """Fail a trial left unfinished by a dead process: its job runs again."""
        from optuna.trial import TrialState

        if trial.state == TrialState.WAITING:
            reason = "its sweeper stopped before the job started"
        else:
            reason = f"its process stopped beating ({describe(record)})"
        log.warning(
            "%s (trial %d) was left unfinished: %s; it runs again",
            trial.user_attrs.get(TrialAttr.RUN_NAME, f"trial#{trial.number}"),
            trial.number,
            reason,
        )
        self.finish_here(trial, Outcome(FAIL, None, reason, INTERRUPTED))

    def finish_here(
        self, trial: FrozenTrial, outcome: Outcome, run_id: str | None = None
    ) -> Finished:
        """Finish a trial its job will not finish (failed, or with the outcome its
        launcher returned), and end its MLflow run.

        A trial stopped before its child run was made gets one now, so that
        the trials and the child runs match one to one. A job that finished
        its trial meanwhile keeps its own outcome.
        """
        trial_id = frozen_trial_id(trial)
        named = trial.user_attrs.get(TrialAttr.MLFLOW_RUN)
        run_id = named or run_id or self._find_child(trial.number)
        if run_id is None:
            run_id = self._create_child(trial.user_attrs, trial.params, trial.number)
        attrs = {TrialAttr.MLFLOW_RUN: run_id} if run_id and not named else {}
        trials.finish(self.study.storage, trial_id, outcome, attrs, start_if_waiting=True)
        fresh = self.study.storage.get_trial(trial_id)
        finished = Finished.from_trial(fresh)
        self.board.note(finished)
        self.settle_run(run_id, fresh)
        return finished

    def _find_child(self, number: int) -> str | None:
        runs = self.mirror.children(self.parent_run_id) if self.parent_run_id else None
        return next((r.run_id for r in runs or () if r.number == number), None)

    def _create_child(
        self, attrs: Mapping[str, Any], params: Mapping[str, Any], number: int
    ) -> str | None:
        """Make a trial's MLflow child run under the sweep's parent run."""
        if self.parent_run_id is None:
            return None
        tags = {attr_tag(k): str(v) for k, v in attrs.items() if k != TrialAttr.RUN_NAME}
        tags[Tag.STUDY_NAME] = self.study.name
        tags[Tag.TRIAL_NUMBER] = str(number)
        name = str(attrs.get(TrialAttr.RUN_NAME, f"trial#{number}"))
        return self.mirror.create_child(self.parent_run_id, ChildSpec(name, params, tags))

    def settle_run(self, run_id: str | None, trial: FrozenTrial) -> None:
        """End an MLflow child run as its finished trial says (unfinished: left alone)."""
        outcome = trials.trial_outcome(trial)
        if run_id and outcome is not None:
            self.mirror.settle(run_id, outcome, trial.number, self.names)

    def settle_running_runs(self) -> None:
        """End the child runs left RUNNING whose trials finished.

        Each trial is read afresh: a run whose trial is unfinished belongs to a
        live job (or to one the reaper fails), and is left alone.
        """
        if self.parent_run_id is None:
            return
        for run in self.mirror.children(self.parent_run_id) or ():
            if run.status != "RUNNING" or run.number is None:
                continue
            try:
                trial = self.study.storage.get_trial(self.trial_id(run.number))
            except KeyError:
                continue
            self.settle_run(run.run_id, trial)

    @shielded()
    def reconcile(self) -> bool:
        """Bring MLflow in line with the study; True when it is (both stores agree).

        Every finished trial's child run gets its status and score; a finished
        trial without a run gets one; a run whose trial is gone ends KILLED.
        """
        if not self.mirror.enabled:
            return True
        if self.parent_run_id is None:
            return False
        runs = self.mirror.children(self.parent_run_id)
        if runs is None:
            return False
        by_number = {r.number: r for r in runs if r.number is not None}
        numbers = set()
        for trial in self.study.trials():
            numbers.add(trial.number)
            outcome = trials.trial_outcome(trial)
            if trial.user_attrs.get(TrialAttr.SLOT) is None or outcome is None:
                continue
            run = by_number.get(trial.number)
            if run is None:
                run_id = self._create_child(trial.user_attrs, trial.params, trial.number)
                if run_id is not None:  # found by its trial number from now on
                    self.mirror.settle(run_id, outcome, trial.number, self.names)
                continue
            scores = score_metrics(outcome, self.names)
            agrees = all(run.metrics.get(k) == v for k, v in scores.items())
            if run.status != run_status(outcome) or not agrees:
                self.mirror.settle(run.run_id, outcome, trial.number, self.names)
        gone = Outcome(FAIL, None, "its trial is not in the study", INTERRUPTED)
        for run in runs:
            if run.status == "RUNNING" and (run.number is None or run.number not in numbers):
                self.mirror.settle(run.run_id, gone, run.number or -1, self.names)
        return not self.mirror.behind

    def wait_elsewhere(self, step: int) -> list[int]:
        """Wait for the slots of ``step`` this process took that a live process
        elsewhere still runs; return the indices of those whose process died
        (they run again here). Finished ones are resolved.
        """
        waiting = {s: i for s, (st, i) in self.waiting.items() if st == step}
        rerun: list[int] = []
        resolved: list[int] = []
        announced: set[str] = set()
        while waiting:
            for slot, index in list(waiting.items()):
                trial = self.study.storage.get_trial(self.elsewhere[slot])
                record = trials.last_beat(self.study.storage, trial)
                if trial.state.is_finished():
                    self.board.note(Finished.from_trial(trial))
                    resolved.append(index)
                elif is_stale(record, self.settings.grace_period):
                    self._reap(trial, record)
                    rerun.append(index)
                else:
                    if slot not in announced:
                        announced.add(slot)
                        log.info(
                            "Waiting for %s (trial %d), still running in %s",
                            trial.user_attrs.get(TrialAttr.RUN_NAME),
                            trial.number,
                            describe(record),
                        )
                    continue
                del waiting[slot], self.waiting[slot], self.elsewhere[slot]
            if waiting:
                time.sleep(min(1.0, self.settings.heartbeat_interval))
        self.coordination.resolve(step, resolved)
        return rerun

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
from ivory_hydra.stores.mlflow_mirror import ChildRun, ChildSpec, run_status

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

        ours = [trial for trial in stored if trial.user_attrs.get(TrialAttr.SLOT) is not None]
        running = [t for t in ours if t.state == TrialState.RUNNING]
        beats = trials.last_beats(self.study.storage, running) if running else {}
        for trial in ours:
            slot = trial.user_attrs[TrialAttr.SLOT]
            if trial.state.is_finished():
                self.board.note(Finished.from_trial(trial))
            elif trial.state == TrialState.WAITING or TrialAttr.REPEATS in trial.user_attrs:
                # its creator concludes it: a configuration's repeats may run anywhere
                owner = trial.system_attrs.get(OWNER)
                if trial.number in self.mine:
                    continue  # handed out by this process, not yet started
                lives = isinstance(owner, Mapping) and self.coordination.owner_lives(owner)
                if not lives and not self._reap(trial, None):  # its creator started it now
                    self.elsewhere[str(slot)] = frozen_trial_id(trial)
            else:
                record = beats[frozen_trial_id(trial)]
                if is_stale(record, self.settings.grace_period):
                    self._reap(trial, record)
                elif trial.number not in self.mine:
                    self.elsewhere[str(slot)] = frozen_trial_id(trial)

    def _reap(self, trial: FrozenTrial, record: Mapping[str, Any] | None) -> bool:
        """Fail a trial left unfinished by a dead process: its job runs again. A WAITING
        trial is failed only if still WAITING (False: its creator started it after all)."""
        from optuna.trial import TrialState

        waiting = trial.state == TrialState.WAITING
        if TrialAttr.REPEATS in trial.user_attrs and trial.state == TrialState.RUNNING:
            reason = "the process that ran its repeats stopped; the missing ones run again"
        elif waiting:
            reason = "its sweeper stopped before the job started"
        else:
            reason = f"its process stopped beating ({describe(record)})"
        alone = waiting and TrialAttr.REPEATS not in trial.user_attrs
        if alone and not trials.start(self.study.storage, frozen_trial_id(trial), beating=False):
            return False
        log.warning(
            "%s (trial %d) was left unfinished: %s; it runs again",
            trial.user_attrs.get(TrialAttr.RUN_NAME, f"trial#{trial.number}"),
            trial.number,
            reason,
        )
        self.finish_here(trial, Outcome(FAIL, None, reason, INTERRUPTED))
        return True

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

    def _children(self) -> list[ChildRun] | None:
        """The sweep's MLflow runs under its parent (None: MLflow cannot be read)."""
        if self.parent_run_id is None:
            return []
        return self.mirror.children(self.parent_run_id, self.study.name)

    def _find_child(self, number: int) -> str | None:
        runs = self._children() or ()
        return next((r.run_id for r in runs if r.number == number and r.repeat is None), None)

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
        for run in self._children() or ():
            if run.status != "RUNNING" or run.number is None:
                continue
            try:
                trial = self.study.storage.get_trial(self.trial_id(run.number))
            except KeyError:
                continue
            if run.repeat is None:
                self.settle_run(run.run_id, trial)
            elif run.repeat in trials.repeat_records(trial):
                outcome = trials.repeat_outcome(trials.repeat_records(trial)[run.repeat])
                self.mirror.settle(run.run_id, outcome, run.number, self.names)

    @shielded()
    def reconcile(self) -> bool:
        """Bring MLflow in line with the study; True when it is (both stores agree).

        Every finished trial's run (and each of its repeats' runs) gets its
        status and score; a finished trial without a run gets one; a run left
        RUNNING whose trial (or configuration) ended, or that has no trial,
        ends KILLED; a parent run that a killed worker made and never shared is
        deleted. Unfinished trials are left to the processes that run them.
        """
        if not self.mirror.enabled:
            return True
        failures = self.mirror.failures
        if self.parent_run_id is None:
            return False
        found = self.mirror.sweep_runs(self.parent_run_id, self.study.name)
        if found is None:
            return False
        if found.strays:
            self.mirror.delete_runs(found.strays)
        runs = found.children
        stored = {t.number: t for t in self.study.trials()}
        runs = self._one_run_each(runs, stored)
        by_key = {(r.number, r.repeat): r for r in runs if r.number is not None}
        for number, trial in stored.items():
            outcome = trials.trial_outcome(trial)
            if trial.user_attrs.get(TrialAttr.SLOT) is None or outcome is None:
                continue  # unfinished: its own process ends its runs
            run = by_key.get((number, None))
            if run is None:
                run_id = self._create_child(trial.user_attrs, trial.params, number)
                if run_id is not None:  # found by its trial number from now on
                    self.mirror.settle(run_id, outcome, number, self.names)
            else:
                self._agree(run, outcome, number)
            for index, record in trials.repeat_records(trial).items():
                if (number, index) in by_key:
                    self._agree(by_key[(number, index)], trials.repeat_outcome(record), number)
        stopped = Outcome(FAIL, None, "its trial ended without it", INTERRUPTED)
        for run in runs:
            trial = stored.get(run.number) if run.number is not None else None
            ended = trial is None or trials.trial_outcome(trial) is not None
            recorded = trial is not None and run.repeat in trials.repeat_records(trial)
            orphan = trial is None or (ended and run.repeat is not None and not recorded)
            if run.status == "RUNNING" and orphan:
                self.mirror.settle(run.run_id, stopped, run.number or -1, self.names)
        return self.mirror.failures == failures

    def _one_run_each(
        self, runs: list[ChildRun], stored: Mapping[int, FrozenTrial]
    ) -> list[ChildRun]:
        """Delete a trial's (or repeat's) extra runs (a create retried after the
        connection dropped, or made beside its job by a reaper); keep the one the
        trial names, else the first."""
        kept: dict[tuple[int, Any], ChildRun] = {}
        extra: list[str] = []
        for run in runs:
            if run.number is None:
                continue
            key = (run.number, run.repeat)
            trial = stored.get(run.number)
            named = trial.user_attrs.get(TrialAttr.MLFLOW_RUN) if trial is not None else None
            if key not in kept:
                kept[key] = run
            elif run.repeat is None and run.run_id == named:
                extra.append(kept[key].run_id)
                kept[key] = run
            else:
                extra.append(run.run_id)
        if extra:
            self.mirror.delete_runs(extra)
        return [r for r in runs if r.number is None or r.run_id not in extra]

    def _agree(self, run: ChildRun, outcome: Outcome, number: int) -> None:
        """Settle a run whose status or score differs from its trial's (or repeat's)."""
        scores = score_metrics(outcome, self.names)
        agrees = all(run.metrics.get(k) == v for k, v in scores.items())
        if run.status != run_status(outcome) or not agrees:
            self.mirror.settle(run.run_id, outcome, number, self.names)

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
            stored = {slot: self.study.storage.get_trial(self.elsewhere[slot]) for slot in waiting}
            unfinished = [t for t in stored.values() if not t.state.is_finished()]
            beats = trials.last_beats(self.study.storage, unfinished) if unfinished else {}
            for slot, index in list(waiting.items()):
                trial = stored[slot]
                record = beats.get(frozen_trial_id(trial))
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

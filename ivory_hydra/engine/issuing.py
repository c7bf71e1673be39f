"""Issuing runs and collecting their outcomes (a part of the engine).

A batch is issued as WAITING trials, numbered from the experiment's ledger,
each with its MLflow child run; the jobs start and finish their own trials.
Collecting reads the outcomes back from the storage, and finishes a trial
only for a job that could not (or did not) record one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from ivory_hydra.core.display import run_line
from ivory_hydra.core.outcomes import FAIL, INTERRUPTED, Outcome
from ivory_hydra.core.plan import Point
from ivory_hydra.engine.recovery import Recovery
from ivory_hydra.engine.results import Finished
from ivory_hydra.signals import shielded
from ivory_hydra.stores import numbering, trials
from ivory_hydra.stores.format import OWNER, TrialAttr
from ivory_hydra.stores.study import TrialSpec
from ivory_hydra.stores.trials import Assignment

log = logging.getLogger(__name__)


class Issuing(Recovery):
    """Issuing runs and collecting them."""

    @shielded()
    def issue(self, points: Sequence[Point]) -> list[Assignment]:
        """Number a batch and create its WAITING trials, then their MLflow child runs.

        Each trial exists before its child run, and the run id is then stored
        in it: a stop at any moment leaves nothing that a restart cannot find.
        In optimize mode the sampler fills in each trial's swept values.
        """
        if not points:
            return []
        first = numbering.allocate(self.ledger, self.experiment, "run", len(points))
        issued = []
        for offset, point in enumerate(points):
            run_name = f"run#{first + offset}"
            shown = {k: self.value_of(v) for k, v in point.params.items()}
            # the job ran at the config default of every swept param not in its point
            params = {**shown, **{k: v for k, v in self.defaults.items() if k not in shown}}
            attrs = {TrialAttr.RUN_NAME: run_name, TrialAttr.SLOT: point.slot}
            attrs[TrialAttr.STEP] = point.step
            later: dict[str, Any] = {}  # attributes known only once the trial exists
            if self.sampling is None:
                attrs.update(self.attrs_of(point))
            spec = TrialSpec(
                params,
                {k: self.distributions[k] for k in params},
                attrs,
                {OWNER: self.coordination.owner()},
            )
            [(trial_id, number)] = self.study.create_trials([spec])
            self.mine.add(number)
            run_number = first + offset
            assignment = Assignment(
                trial_id, number, run_name, point, params, None, None, run_number
            )
            self.in_flight.append(assignment)
            if self.sampling is not None:
                sampled = self.sampling.sample(trial_id, params)
                wrapped = {k: self.wrap(k, v) for k, v in sampled.items()}
                point = Point(point.step, point.index, {**point.params, **wrapped})
                params = shown = {**params, **sampled}
                later.update(self.attrs_of(point))
            run_id = self._create_child({**attrs, **later}, params, number)
            assignment = Assignment(
                trial_id, number, run_name, point, params, run_id, None, run_number
            )
            self.in_flight[-1] = assignment
            if run_id is not None:
                later[TrialAttr.MLFLOW_RUN] = run_id
            trials.set_attrs(self.study.storage, trial_id, later)
            issued.append(assignment)
            self.show(run_line(run_name, shown))
        self.issued += len(issued)
        return issued

    @shielded()
    def collect(
        self, batch: Sequence[Assignment], fallback: Mapping[int, Outcome] | None = None
    ) -> list[Finished]:
        """Read the batch's outcomes back from the storage.

        A trial its job left unfinished is finished here: with the outcome in
        ``fallback`` (by trial number) when the job could not reach the
        storage, or failed when the job never recorded one.
        """
        results = []
        unreachable = 0
        ids = {a.trial_id for a in batch}
        self.in_flight = [a for a in self.in_flight if a.trial_id not in ids]
        for assignment in batch:
            if assignment.trial_id in self.collected:
                continue
            self.collected.add(assignment.trial_id)
            trial = self.study.storage.get_trial(assignment.trial_id)
            if trial.state.is_finished():
                run = Finished.from_trial(trial)
                self.board.note(run)
            else:
                outcome = (fallback or {}).get(assignment.job)
                if outcome is not None:
                    unreachable += 1
                else:
                    outcome = Outcome(FAIL, None, "the job ended without recording an outcome")
                run = self.finish_here(trial, outcome, assignment.mlflow_run_id)
            results.append(run)
            if self.sampling is not None:
                self.sampling.after(assignment.trial_id)
        if unreachable:
            log.warning(
                "%d job(s) of this batch could not reach the Optuna storage from their "
                "process; their outcomes were recorded by the sweeper",
                unreachable,
            )
        return results

    @shielded()
    def fail_in_flight(self, reason: str) -> None:
        """The sweep stops: fail the unfinished trials of the batch in flight.

        Their MLflow runs end as their trials say: KILLED for those that never
        finished (a job stopped while it ended its run is settled too).
        """
        outcome = Outcome(FAIL, None, reason, INTERRUPTED)
        for assignment in self.in_flight:
            if assignment.trial_id in self.collected:
                continue
            self.collected.add(assignment.trial_id)
            trial = self.study.storage.get_trial(assignment.trial_id)
            if trial.state.is_finished():  # its job was stopped as it ended its MLflow run
                self.settle_run(assignment.mlflow_run_id, trial)
            else:
                self.finish_here(trial, outcome, assignment.mlflow_run_id)
        self.in_flight = []

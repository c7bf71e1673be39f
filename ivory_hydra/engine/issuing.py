"""Issuing runs and collecting their outcomes (a part of the engine).

A batch is issued as WAITING trials, numbered from the experiment's ledger,
each with its MLflow child run; the jobs start and finish their own trials.
Collecting reads the outcomes back from the storage, and finishes a trial
only for a job that could not (or did not) record one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ivory_hydra.core.display import run_line
from ivory_hydra.core.outcomes import FAIL, INTERRUPTED, Outcome
from ivory_hydra.core.plan import Point
from ivory_hydra.core.zipped import Row, flatten
from ivory_hydra.engine.recovery import Recovery
from ivory_hydra.engine.results import Finished
from ivory_hydra.signals import shielded
from ivory_hydra.stores import numbering, trials
from ivory_hydra.stores.format import OWNER, TrialAttr
from ivory_hydra.stores.study import TrialSpec
from ivory_hydra.stores.trials import Assignment

log = logging.getLogger(__name__)

_Job = TypeVar("_Job")  # what a run is issued for: a point, a repeat of a configuration


class Issuing(Recovery):
    """Issuing runs and collecting them."""

    @shielded()
    def issue(self, points: Sequence[Point]) -> list[Assignment]:
        """Number a batch and create its WAITING trials, then their MLflow child runs.

        Each trial exists before its child run, and the run id is then stored
        in it: a stop at any moment leaves nothing that a restart cannot find.
        In optimize mode the sampler fills in each trial's swept values.
        """
        return self._issue_runs(points, self._issue_point)

    def _issue_point(
        self, point: Point, run_name: str, run_number: int
    ) -> tuple[Assignment, dict[str, Any]]:
        """One point's WAITING trial, then its MLflow child run: its assignment,
        and the params its run line shows."""
        shown, params = self._params_of(point)
        attrs = {TrialAttr.RUN_NAME: run_name, TrialAttr.SLOT: point.slot}
        attrs[TrialAttr.STEP] = point.step
        later: dict[str, Any] = {}  # attributes known only once the trial exists
        if self.sampling is None:
            attrs.update(self.attrs_of(point))
        trial_id, number = self._create_trial(params, attrs)
        assignment = Assignment(trial_id, number, run_name, point, params, None, None, run_number)
        self.in_flight.append(assignment)
        if self.sampling is not None:
            point, params = self._sample(trial_id, point, params)
            shown = {k: v for k, v in params.items() if k not in self.definition.rows}
            later.update(self.attrs_of(point))
        run_id = self._create_child({**attrs, **later}, params, number)
        assignment = Assignment(trial_id, number, run_name, point, params, run_id, None, run_number)
        self.in_flight[-1] = assignment
        if run_id is not None:
            later[TrialAttr.MLFLOW_RUN] = run_id
        trials.set_attrs(self.study.storage, trial_id, later)
        return assignment, shown

    def _issue_runs(
        self,
        jobs: Sequence[_Job],
        issue_one: Callable[[_Job, str, int], tuple[Assignment, Mapping[str, Any]]],
    ) -> list[Assignment]:
        """Number ``jobs`` as runs from the experiment's ledger and issue each one.

        ``issue_one(job, run_name, run_number)`` gives the job's assignment and
        the params its run line shows; each is shown as it is issued.
        """
        if not jobs:
            return []
        first = numbering.allocate(self.ledger, self.experiment, "run", len(jobs))
        issued = []
        for offset, job in enumerate(jobs):
            run_number = first + offset
            assignment, shown = issue_one(job, f"run#{run_number}", run_number)
            issued.append(assignment)
            self.show(run_line(assignment.run_name, shown))
        self.issued += len(issued)
        return issued

    def _params_of(self, point: Point) -> tuple[dict[str, Any], dict[str, Any]]:
        """A point's values as its run line shows them, and the params its job runs with."""
        shown = {k: self.value_of(v) for k, v in point.params.items()}
        # the job ran at the config default of every swept param not in its point
        params = {**shown, **{k: v for k, v in self.defaults.items() if k not in shown}}
        return shown, params

    def _create_trial(
        self,
        params: dict[str, Any],
        attrs: Mapping[str, Any],
        scores: Mapping[int, float] | None = None,
    ) -> tuple[int, int]:
        """A new WAITING trial owned by this process (``scores``: its intermediate
        values); its id and number."""
        spec = TrialSpec(
            params,
            {k: self.distributions[k] for k in params},
            attrs,
            {OWNER: self.coordination.owner()},
            scores or {},
        )
        [(trial_id, number)] = self.study.create_trials([spec])
        self.mine.add(number)
        return trial_id, number

    def _sample(
        self, trial_id: int, point: Point, params: dict[str, Any]
    ) -> tuple[Point, dict[str, Any]]:
        """Optimize mode: a new trial's point and params with the sampler's values in."""
        sampled = self.sampling.sample(trial_id, params)
        wrapped = {k: self.wrap(k, v) for k, v in sampled.items()}
        # a zipped row is sampled as one categorical param: its members are recorded too
        members = {
            name: self.value_of(value)
            for row in wrapped.values()
            if isinstance(row, Row)
            for name, value in row.members
        }
        if members:
            chosen = {k: self.distributions[k] for k in members}
            trials.set_params(self.study.storage, trial_id, members, chosen)
        point = Point(point.step, point.index, flatten({**point.params, **wrapped}))
        return point, {**params, **sampled, **members}

    @shielded()
    def collect(
        self, batch: Sequence[Assignment], fallback: Mapping[int, Outcome] | None = None
    ) -> list[Finished]:
        """Read the batch's outcomes back from the storage.

        A trial its job left unfinished is finished here: with the outcome in
        ``fallback`` (by job number) when the job could not reach the
        storage, or failed when the job never recorded one. A job that a
        budget kept from starting is given back (its slot runs on resume).
        A failure recorded here counts against the failure budget.
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
                if outcome is None:
                    outcome = Outcome(FAIL, None, "the job ended without recording an outcome")
                elif outcome.left:
                    self.issued -= 1  # handed out, never run
                else:
                    unreachable += 1
                run = self.finish_here(trial, outcome, assignment.mlflow_run_id)
                self.budgets.count(outcome)
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

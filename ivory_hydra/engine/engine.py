"""The engine: one walk of a product or chain plan, for both front ends.

It hands out the next points as claims (WAITING trials with their numbers,
params and MLflow child runs), reads each finished run's outcome back from the
storage, makes chain decisions, and knows what is finished for resume. The
Hydra sweeper launches its batches through Hydra's launcher; the task API
yields them one run at a time. Jobs own their trials
(:mod:`ivory_hydra.job.session`): the engine never holds a result that the
storage does not.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.display import run_line
from ivory_hydra.core.outcomes import COMPLETE, FAIL, Outcome
from ivory_hydra.core.plan import Plan, Point, pareto_front, parse_slot
from ivory_hydra.signals import shielded
from ivory_hydra.stores import numbering, trials
from ivory_hydra.stores.format import OWNER, StudyAttr, Tag, TrialAttr, metric_names, score_metrics
from ivory_hydra.stores.liveness import GRACE_PERIOD, HEARTBEAT_INTERVAL, HOST, describe, is_stale
from ivory_hydra.stores.study import Study, TrialSpec
from ivory_hydra.stores.trials import Claim

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from ivory_hydra.engine.crew import Crew
    from ivory_hydra.engine.lease import Lease
    from ivory_hydra.stores.ledger import Ledger
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.sampling import Sampling

log = logging.getLogger(__name__)

#: Batches never exceed this many runs when ``max_batch_size`` is not set, so
#: that a sweep of a million jobs starts its first job in seconds.
DEFAULT_BATCH_LIMIT = 100


@dataclass(frozen=True)
class Settings:
    """How the engine scores and keeps runs alive."""

    metric: Any = None  # a name, or with several objectives None or a list of names
    direction: Any = "minimize"  # with several objectives, a list
    use_best_param: bool = True
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    grace_period: float = GRACE_PERIOD

    @property
    def directions(self) -> list[str]:
        """One direction per objective."""
        return [self.direction] if isinstance(self.direction, str) else list(self.direction)

    @property
    def objectives(self) -> int:
        """How many objectives a run scores."""
        return len(self.directions)

    def metric_names(self) -> list[str]:
        """The metric name each objective is logged under (see :func:`metric_names`)."""
        return metric_names(self.metric, self.objectives)


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

    @property
    def finished(self) -> bool:
        """Every run of the plan finished, none failed."""
        return not self.failed and sum(self.counts.values()) == self.total

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``results.yaml`` and the study's ``summary`` attribute."""
        best = None
        if self.best is not None:
            best = {
                "run": self.best.run_name,
                "score": self.best.outcome.score,
                "params": self.best.params,
                "trial_number": self.best.number,
                "overrides": self.best.attrs.get(TrialAttr.OVERRIDES),
                "output_dir": self.best.attrs.get(TrialAttr.OUTPUT_DIR),
            }
        return {
            "task": self.task,
            "total": self.total,
            "finished": self.finished,
            "best": best,
            "pareto": [
                {"run": f.run_name, "values": list(f.outcome.values or ()), "params": f.params}
                for f in self.pareto
            ],
            "decisions": self.decisions,
            "runs": self.counts,
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


class Engine:
    """Walks one plan over one study; see the module docstring."""

    def __init__(
        self,
        *,
        study: Study,
        ledger: Ledger,
        experiment: str,
        task: str,
        plan: Plan,
        distributions: Mapping[str, BaseDistribution],
        settings: Settings,
        value_of: Callable[[Any], Any] = lambda value: value,
        attrs_of: Callable[[Point], dict[str, Any]] = lambda point: {},
        defaults: Mapping[str, Any] | None = None,
        sampling: Sampling | None = None,
        wrap: Callable[[str, Any], Any] = lambda name, value: value,
        mirror: MlflowMirror | None = None,
        parent_run_id: str | None = None,
        show: Callable[[str], None] = print,
    ) -> None:
        self.study = study
        self.ledger = ledger
        self.experiment = experiment
        self.task = task
        self.plan = plan
        self.distributions = dict(distributions)
        self.settings = settings
        self.value_of = value_of
        self.attrs_of = attrs_of
        self.defaults = dict(defaults or {})
        self.sampling = sampling
        self.wrap = wrap
        self.mirror = mirror
        self.parent_run_id = parent_run_id
        self.show = show
        self.winners: dict[str, Any] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self._done: dict[str, Finished] = {}  # slot -> complete or unscored run
        self._failed: dict[str, Finished] = {}  # slot -> its latest failed run
        self._elsewhere: dict[str, int] = {}  # slot -> trial id run by a live process
        self._best: Finished | None = None
        self._collected: set[int] = set()
        self.claimed = 0  # claims made by this process
        self.mine: set[int] = set()  # their trial numbers
        self._batch: list[Claim] = []  # handed out, not yet collected
        self.closed = False
        self.crew: Crew | None = None  # set when workers share the sweep
        self._last: bool | None = None
        self.lease: Lease | None = None

    # ------------------------------------------------------------ reading back

    @shielded()
    def load(self) -> int:
        """Read what earlier runs of this study left; return how many runs are done.

        Finished trials map back to their slots; a trial left WAITING or
        RUNNING by a process that died is failed in Optuna and its MLflow run
        marked KILLED, so that its job runs again; one still run by a live
        process elsewhere is waited for.
        """
        from optuna.trial import TrialState

        stored = self.study.user_attrs.get(StudyAttr.DECISIONS) or {}
        self.decisions = {str(k): dict(v) for k, v in stored.items() if isinstance(v, Mapping)}
        stored_trials = self.study.trials()
        running = {} if self.study.created else self._running_children()
        for trial in stored_trials:
            slot = trial.user_attrs.get(TrialAttr.SLOT)
            if slot is None:
                continue
            if trial.state in (TrialState.WAITING, TrialState.RUNNING):
                record = trials.last_beat(trial)
                if trial.state == TrialState.WAITING and self._owner_lives(trial):
                    continue  # a live worker will launch it
                if trial.state == TrialState.WAITING or is_stale(
                    record, self.settings.grace_period
                ):
                    self._reap(trial, record, running.pop(trial.number, None))
                    continue
                self._elsewhere[str(slot)] = self._trial_id(trial)
                running.pop(trial.number, None)  # a live job elsewhere still runs it
                continue
            self._note(Finished.from_trial(trial))
        numbers = {t.number for t in stored_trials}
        for number, run_id in running.items():  # a job stopped while it ended its run
            known = isinstance(number, int) and number in numbers
            trial = self.study.storage.get_trial(self._trial_id_of(number)) if known else None
            self._settle_run(run_id, trial)
        return len(self._done)

    @property
    def _owner(self) -> dict[str, Any]:
        owner: dict[str, Any] = {"host": HOST, "pid": os.getpid()}
        if self.crew is not None:
            owner["worker"] = self.crew.key
        return owner

    def _owner_lives(self, trial: FrozenTrial) -> bool:
        """Whether the worker that created a WAITING trial still lives (workers only).

        A lone sweeper took the sweep's lease, so the creators of what it finds are gone.
        """
        owner = trial.system_attrs.get(OWNER)
        if self.crew is None or not isinstance(owner, Mapping) or not owner.get("worker"):
            return False
        record = self.ledger.get(str(owner["worker"]))
        return record is not None and not is_stale(record, self.settings.grace_period)

    @shielded()
    def reap(self) -> None:
        """Fail the trials of workers that died (after one was found dead)."""
        from optuna.trial import TrialState

        for trial in self.study.trials(states=(TrialState.WAITING, TrialState.RUNNING)):
            record = trials.last_beat(trial)
            if trial.state == TrialState.WAITING:
                dead = not self._owner_lives(trial)
            else:
                dead = is_stale(record, self.settings.grace_period)
            if dead:
                self._reap(trial, record)

    def refresh(self) -> None:
        """Read the runs that other workers finished (once per chain step, and at the end)."""
        for trial in self.study.trials():
            if trial.state.is_finished() and trial.user_attrs.get(TrialAttr.SLOT) is not None:
                self._note(Finished.from_trial(trial))

    def _running_children(self) -> dict[int | str, str]:
        """The MLflow child runs a stopped process left RUNNING, by trial number.

        A run that carries no trial number (an older version made it) is keyed by its id.
        """
        if self.mirror is None or self.parent_run_id is None:
            return {}
        try:
            running = self.mirror.running_children(self.parent_run_id)
        except Exception as error:  # noqa: BLE001
            log.warning("Could not look for MLflow runs left running: %s", error)
            return {}
        return {run_id if number is None else number: run_id for run_id, number in running}

    def _trial_id(self, trial: FrozenTrial) -> int:
        return self._trial_id_of(trial.number)

    def _trial_id_of(self, number: int) -> int:
        return self.study.storage.get_trial_id_from_study_id_trial_number(
            self.study.study_id, number
        )

    def _note(self, run: Finished) -> None:
        # A failed job's slot runs again on resume; in optimize mode a failed
        # sample is spent (only one its sweeper stopped runs again).
        final = self.sampling is not None and run.outcome.error != "Interrupted"
        if run.outcome.state == FAIL and not final:
            if run.slot not in self._done:
                self._failed[run.slot] = run
            return
        if run.outcome.state != FAIL:
            self._failed.pop(run.slot, None)
        self._done.setdefault(run.slot, run)
        if run.outcome.state == COMPLETE and self.settings.objectives == 1 and self._better(run):
            self._best = run

    def _better(self, run: Finished) -> bool:
        if self._best is None:
            return True
        new, old = run.outcome.score, self._best.outcome.score
        assert new is not None and old is not None
        if new == old:
            return run.number < self._best.number
        return new < old if self.settings.direction == "minimize" else new > old

    def _reap(
        self, trial: FrozenTrial, record: Mapping[str, Any] | None, orphan: str | None = None
    ) -> None:
        """Fail a trial left unfinished by a dead process; ``orphan`` is its unnamed run."""
        from optuna.trial import TrialState

        if trial.state == TrialState.WAITING:
            reason = "its sweeper stopped before the job started"
        else:
            reason = f"its process stopped beating ({describe(record)})"
        run_name = trial.user_attrs.get(TrialAttr.RUN_NAME, f"trial#{trial.number}")
        log.warning(
            "%s (trial %d) was left unfinished: %s; it runs again", run_name, trial.number, reason
        )
        outcome = Outcome(FAIL, None, reason, "Interrupted")
        trial_id = self._trial_id(trial)
        self._fail_unfinished(trial_id, trial, outcome, orphan)

    def _fail_unfinished(
        self, trial_id: int, trial: FrozenTrial, outcome: Outcome, run_id: str | None
    ) -> None:
        """Fail a trial that its job will never finish, and end its MLflow run KILLED.

        A trial stopped before its child run was made gets one now, so that the
        trials and the child runs still match one to one.
        """
        named = trial.user_attrs.get(TrialAttr.MLFLOW_RUN)
        run_id = named or run_id
        if run_id is None:  # a stop while its run was being made: find it, else make one
            run_id = self._running_children().get(trial.number)
        if run_id is None:
            run_id = self._create_child(
                str(trial.user_attrs.get(TrialAttr.RUN_NAME, f"trial#{trial.number}")),
                trial.params,
                trial.user_attrs,
                trial.number,
            )
        attrs = {TrialAttr.MLFLOW_RUN: run_id} if run_id and not named else {}
        trials.finish(self.study.storage, trial_id, outcome, attrs, claimed=False)
        self._settle_run(run_id, self.study.storage.get_trial(trial_id))

    def _settle_run(self, run_id: str | None, trial: FrozenTrial | None) -> None:
        """End an MLflow child run that is still RUNNING as its trial says.

        A run whose trial is missing or unfinished ends KILLED.
        """
        if self.mirror is None or not run_id:
            return
        from ivory_hydra.job.session import mlflow_status

        outcome = None if trial is None else trials.trial_outcome(trial)
        if outcome is None:
            outcome = Outcome(FAIL, None, "its job never recorded an outcome", "Interrupted")
        tags = {Tag.STATE: outcome.state}
        if outcome.reason:
            tags[Tag.REASON] = outcome.reason
        try:
            if self.mirror.run_status(run_id) != "RUNNING":
                return
            self.mirror.finish_child(
                run_id,
                mlflow_status(outcome),
                metrics=score_metrics(outcome, self.settings.metric_names()),
                tags=tags,
            )
        except Exception as error:  # noqa: BLE001 - Optuna holds the truth; MLflow mirrors it
            log.warning("Could not end MLflow run %s: %s", run_id, error)

    # ------------------------------------------------------------ walking

    @property
    def done(self) -> int:
        """How many runs of the plan finished (complete or unscored)."""
        return len(self._done)

    def todo(self, step: int) -> Iterator[Point]:
        """The points of ``step`` that still have to run here, computed lazily."""
        for point in self.plan.points(step, self.winners):
            if point.slot not in self._done and point.slot not in self._elsewhere:
                yield point

    def walk(
        self, batch_size: int | None = None, first_alone: bool = False
    ) -> Iterator[list[Claim]]:
        """Hand out the plan's runs in batches, step by step.

        The caller runs each batch (the jobs finish their own trials), then
        may call :meth:`collect` with fallback outcomes; whatever it leaves
        uncollected is collected when the walk goes on. ``first_alone`` runs
        the sweep's very first job alone (a fresh sweep with a metric checks
        its first result before starting the rest).
        """
        if self.crew is not None:
            yield from self._walk_together(batch_size or DEFAULT_BATCH_LIMIT)
            return
        size = batch_size or DEFAULT_BATCH_LIMIT
        alone = first_alone and not self._done and not self._failed
        for step in range(self.plan.num_steps):
            while True:
                for points in _chunks(self.todo(step), size, 1 if alone else size):
                    alone = False
                    claims = self.claim(points)
                    yield claims
                    self.collect(claims)
                if not self._wait_elsewhere(step):
                    break
            self.decide(step)

    def _walk_together(self, size: int) -> Iterator[list[Claim]]:
        """The walk of one worker among several: ranges of slots taken from the crew.

        A chain step ends for everyone when its last slot is resolved; workers
        that run out of slots wait for the others, and take over the ranges of
        a worker that died.
        """
        crew = self.crew
        assert crew is not None
        for step in range(self.plan.num_steps):
            name = self.plan.stepping(step)
            if name is not None and self.settings.use_best_param and crew.decision(name):
                self.decide(step)  # decided before this worker joined
                continue
            total = self.plan.size(step)
            told = False
            while True:
                if crew.inherit():
                    self.reap()
                    self.refresh()
                taken = crew.take(step, total, size)
                if taken is None:
                    resolved = crew.resolved(step)
                    if resolved >= total or not crew.alive:
                        break
                    if not told:
                        told = True
                        what = f"{name}, " if name else ""
                        log.info(
                            f"Waiting for the other workers to end step {step} ({what}"
                            f"{resolved} of {total} jobs done)"
                        )
                    time.sleep(min(1.0, self.settings.heartbeat_interval))
                    continue
                points = [self.plan.point(step, i, self.winners) for i in taken]
                points = [p for p in points if p.slot not in self._done]
                if points:
                    claims = self.claim(points)
                    yield claims
                    self.collect(claims)
                crew.finished(step, taken)
            self.refresh()
            self.decide(step)

    @shielded()
    def claim(self, points: Sequence[Point]) -> list[Claim]:
        """Number a batch and create its WAITING trials, then their MLflow child runs.

        Each trial exists before its child run, and the run id is then stored
        in it: a stop at any moment leaves nothing that a restart cannot find.
        In optimize mode the sampler fills in each trial's swept values.
        """
        if not points:
            return []
        first = numbering.allocate(self.ledger, self.experiment, "run", len(points))
        claims = []
        for offset, point in enumerate(points):
            run_name = f"run#{first + offset}"
            shown = {k: self.value_of(v) for k, v in point.params.items()}
            # the job ran at the config default of every swept param not in its point
            params = {**shown, **{k: v for k, v in self.defaults.items() if k not in shown}}
            attrs = {TrialAttr.RUN_NAME: run_name, TrialAttr.SLOT: point.slot}
            attrs[TrialAttr.STEP] = point.step
            later = {}  # attributes known only once the trial exists
            if self.sampling is None:
                attrs.update(self.attrs_of(point))
            spec = TrialSpec(
                params, {k: self.distributions[k] for k in params}, attrs, {OWNER: self._owner}
            )
            [(trial_id, number)] = self.study.create_trials([spec])
            claim = Claim(trial_id, number, run_name, point, params)
            self._batch.append(claim)
            if self.sampling is not None:
                sampled = self.sampling.sample(trial_id, params)
                wrapped = {k: self.wrap(k, v) for k, v in sampled.items()}
                point = Point(point.step, point.index, {**point.params, **wrapped})
                params = shown = {**params, **sampled}
                later.update(self.attrs_of(point))
            run_id = self._create_child(run_name, params, {**attrs, **later}, number)
            claim = Claim(trial_id, number, run_name, point, params, run_id)
            self._batch[-1] = claim
            if run_id is not None:
                later[TrialAttr.MLFLOW_RUN] = run_id
            trials.set_attrs(self.study.storage, trial_id, later)
            claims.append(claim)
            self.show(run_line(run_name, shown))
        self.claimed += len(claims)
        self.mine.update(c.number for c in claims)
        return claims

    def _create_child(
        self, run_name: str, params: Mapping[str, Any], attrs: Mapping[str, Any], number: int
    ) -> str | None:
        if self.mirror is None or self.parent_run_id is None:
            return None
        from ivory_hydra.stores.mlflow_mirror import ChildSpec

        tags = {f"ivory.{k}": str(v) for k, v in attrs.items() if k != TrialAttr.RUN_NAME}
        tags[Tag.STUDY_NAME] = self.study.name
        tags[Tag.TRIAL_NUMBER] = str(number)
        return self.mirror.create_child(self.parent_run_id, ChildSpec(run_name, params, tags))

    @shielded()
    def collect(
        self, claims: Sequence[Claim], fallback: Mapping[int, Outcome] | None = None
    ) -> list[Finished]:
        """Read the batch's outcomes back from the storage.

        A trial its job left unfinished is finished here: with the outcome in
        ``fallback`` (by trial number) when the job could not reach the
        storage, or failed when the job never reported.
        """
        results = []
        unreachable = 0
        collected = {c.trial_id for c in claims}
        self._batch = [c for c in self._batch if c.trial_id not in collected]
        for claim in claims:
            if claim.trial_id in self._collected:
                continue
            self._collected.add(claim.trial_id)
            trial = self.study.storage.get_trial(claim.trial_id)
            if trial.state.is_finished():
                run = Finished.from_trial(trial)
            else:
                outcome = (fallback or {}).get(claim.number)
                if outcome is not None:
                    unreachable += 1
                else:
                    outcome = Outcome(FAIL, None, "the job ended without recording an outcome")
                run = self._finish_here(claim, outcome, trial.user_attrs)
            self._note(run)
            results.append(run)
            if self.sampling is not None:
                self.sampling.after(claim.trial_id)
        if unreachable:
            log.warning(
                "%d job(s) of this batch could not reach the Optuna storage from their "
                "process; their outcomes were recorded by the sweeper",
                unreachable,
            )
        return results

    def _finish_here(self, claim: Claim, outcome: Outcome, attrs: Mapping[str, Any]) -> Finished:
        trials.finish(self.study.storage, claim.trial_id, outcome, claimed=False)
        if self.mirror is not None and claim.mlflow_run_id:
            from ivory_hydra.job.session import mlflow_status

            metrics = score_metrics(outcome, self.settings.metric_names())
            tags = {Tag.STATE: outcome.state, Tag.TRIAL_NUMBER: str(claim.number)}
            if outcome.reason:
                tags[Tag.REASON] = outcome.reason
            try:
                self.mirror.finish_child(
                    claim.mlflow_run_id, mlflow_status(outcome), metrics=metrics, tags=tags
                )
            except Exception as error:  # noqa: BLE001
                log.warning("Could not end MLflow run %s: %s", claim.mlflow_run_id, error)
        finished_attrs = {**attrs, **trials.outcome_attrs(outcome)}
        return Finished(
            claim.run_name, claim.number, claim.point.slot, outcome, claim.params, finished_attrs
        )

    @shielded()
    def abandon(self, reason: str) -> None:
        """The sweep stops: fail the unfinished trials of the batch in flight.

        The batch's MLflow runs end as their trials say, KILLED for those that
        never finished (a job stopped while ending its run is settled too).
        """
        outcome = Outcome(FAIL, None, reason, "Interrupted")
        for claim in self._batch:
            if claim.trial_id in self._collected:
                continue
            self._collected.add(claim.trial_id)
            trial = self.study.storage.get_trial(claim.trial_id)
            if trial.state.is_finished():  # its job was stopped as it ended its MLflow run
                self._settle_run(claim.mlflow_run_id, trial)
            else:
                self._fail_unfinished(claim.trial_id, trial, outcome, claim.mlflow_run_id)
        self._batch = []

    def _wait_elsewhere(self, step: int) -> bool:
        """Wait for this step's runs that live processes elsewhere still run.

        Returns True if some of them died (their slots are to run again here).
        """
        waiting = {
            slot: trial_id
            for slot, trial_id in self._elsewhere.items()
            if parse_slot(slot)[0] == step
        }
        rerun = False
        announced: set[str] = set()
        while waiting:
            for slot, trial_id in list(waiting.items()):
                trial = self.study.storage.get_trial(trial_id)
                record = trials.last_beat(trial)
                if trial.state.is_finished():
                    self._note(Finished.from_trial(trial))
                elif is_stale(record, self.settings.grace_period):
                    self._reap(trial, record)
                    rerun = True
                elif slot not in announced:
                    announced.add(slot)
                    log.info(
                        "Waiting for %s (trial %d), still running in %s",
                        trial.user_attrs.get(TrialAttr.RUN_NAME),
                        trial.number,
                        describe(record),
                    )
                    continue
                else:
                    continue
                del waiting[slot]
                del self._elsewhere[slot]
            if waiting:
                time.sleep(min(1.0, self.settings.heartbeat_interval))
        return rerun

    # ------------------------------------------------------------ chain decisions

    @shielded()
    def decide(self, step: int) -> None:
        """Fix the chain param of ``step`` at its best value (a decision made once stands)."""
        name = self.plan.stepping(step)
        if name is None or not self.settings.use_best_param:
            return
        values = self.plan.swept[name]
        stored = self.decisions.get(name)
        if stored is None and self.crew is not None:
            stored = self.crew.decision(name)
        if stored is not None and 0 <= int(stored.get("index", -1)) < len(values):
            index = int(stored["index"])
            self.decisions[name] = stored
        else:
            runs = [self._done.get(f"{step}.{i}") for i in range(len(values))]
            scores = [r.outcome.score if r and r.outcome.state == COMPLETE else None for r in runs]
            index = Plan.winner_index(scores, self.settings.direction)
            winner = runs[index]
            decision = {
                "value": self.value_of(values[index]),
                "index": index,
                "score": winner.outcome.score if winner else None,
                "run": winner.run_name if winner else None,
            }
            if self.crew is not None:  # the first worker's decision stands for all
                decision = self.crew.decide(name, decision)
                index = int(decision["index"])
            self.decisions[name] = decision
            self.study.set_attrs({StudyAttr.DECISIONS: self.decisions})
        self.winners[name] = values[index]
        log.info(f"Chain: {name} is fixed at {self.decisions[name]['value']}")

    # ------------------------------------------------------------ the end

    def chain_steps(self) -> list[tuple[str, list[Any], list[float | None], int | None]]:
        """Each chain step as (param, its values, their scores, the winner's index).

        A value's score is None when its run failed, went unscored or has not run.
        """
        steps = []
        for step in range(self.plan.num_steps):
            name = self.plan.stepping(step)
            if name is None:
                continue
            values = self.plan.swept[name]
            runs = [self._done.get(f"{step}.{i}") for i in range(len(values))]
            scores = [r.outcome.score if r is not None else None for r in runs]
            decision = self.decisions.get(name)
            winner = int(decision["index"]) if decision and "index" in decision else None
            steps.append((name, [self.value_of(v) for v in values], scores, winner))
        return steps

    def summary(self) -> Summary:
        """The best run, the decisions and the failures so far."""
        counts: dict[str, int] = {}
        for run in self._done.values():
            counts[run.outcome.state] = counts.get(run.outcome.state, 0) + 1
        if self._failed:
            counts[FAIL] = len(self._failed)
        failed = sorted(self._failed.values(), key=lambda r: r.number)
        pareto: list[Finished] = []
        if self.settings.objectives > 1:
            scored = sorted(
                (r for r in self._done.values() if r.outcome.values is not None),
                key=lambda r: r.number,
            )
            front = pareto_front([r.outcome.values or () for r in scored], self.settings.directions)
            pareto = [scored[i] for i in front]
        return Summary(
            self.task, self.plan.total, self._best, dict(self.decisions), counts, failed, pareto
        )

    @shielded()
    def close(
        self,
        summary: Summary | None = None,
        *,
        status: str = "FINISHED",
        artifacts: Sequence[Any] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Store the summary in the study, close the MLflow parent run, give up the lease.

        Among several workers only the last one does the first two.
        """
        self.closed = True
        try:
            if self.leave():
                summary = summary or self.summary()
                self.study.set_attrs({StudyAttr.SUMMARY: summary.as_dict()})
                if self.mirror is not None and self.parent_run_id is not None:
                    self._close_parent(summary, status, artifacts, tags)
        finally:
            self.release()

    @shielded()
    def leave(self) -> bool:
        """Stop taking work; True when this process is the last of its sweep's workers.

        The last one reads every worker's results, for the summary.
        """
        if self.crew is None:
            return True
        if self._last is None:
            self._last = self.crew.leave()
            if self._last:
                self.refresh()
        return self._last

    def release(self) -> None:
        """Give up the lease on the sweep (if this engine holds one)."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    @shielded()
    def discard(self, claims: Sequence[Claim], created: bool) -> None:
        """Undo a sweep that must not have started: its MLflow runs, and its study if new.

        Numbers taken from the experiment's ledger stay taken.
        """
        self.closed = True
        try:
            if self.mirror is not None:
                runs = [c.mlflow_run_id for c in claims if c.mlflow_run_id]
                if created and self.parent_run_id:
                    runs.append(self.parent_run_id)
                self.mirror.delete_runs(runs)
            if created:
                self.study.delete()
        finally:
            self.release()

    def _close_parent(
        self,
        summary: Summary,
        status: str,
        artifacts: Sequence[Any],
        tags: Mapping[str, str] | None,
    ) -> None:
        assert self.mirror is not None and self.parent_run_id is not None
        best = summary.best
        metrics = {}
        params: dict[str, Any] = {}
        all_tags = dict(tags or {})
        if (
            best is not None
            and best.outcome.score is not None
            and math.isfinite(best.outcome.score)
        ):
            metrics[f"best_{self.settings.metric_names()[0]}"] = best.outcome.score
            params = best.params
            all_tags[Tag.BEST_RUN] = best.run_name
        if summary.pareto:
            all_tags[Tag.PARETO_RUNS] = " ".join(f.run_name for f in summary.pareto)
        self.mirror.close_parent(
            self.parent_run_id,
            params=params,
            metrics=metrics,
            tags=all_tags,
            artifacts=artifacts,
            status=status,
        )


def _chunks(points: Iterator[Point], size: int, first: int) -> Iterator[list[Point]]:
    """Lists of at most ``size`` points (the first of at most ``first``), drawn lazily.

    >>> [len(c) for c in _chunks(iter(range(7)), 3, 1)]
    [1, 3, 3]
    """
    limit = first
    batch: list[Point] = []
    for point in points:
        batch.append(point)
        if len(batch) >= limit:
            yield batch
            batch, limit = [], size
    if batch:
        yield batch


@dataclass
class Opening:
    """Everything :func:`open_engine` needs to open (or resume) a sweep or task."""

    storage_url: str
    study_name: str
    experiment: str
    kind: str
    plan: Plan
    distributions: Mapping[str, BaseDistribution]
    settings: Settings
    study_attrs: Mapping[str, Any] = field(default_factory=dict)
    parent_tags: Mapping[str, str] = field(default_factory=dict)
    task_name: str | None = None
    mirror: MlflowMirror | None = None
    lease: bool = True
    value_of: Callable[[Any], Any] = lambda value: value
    attrs_of: Callable[[Point], dict[str, Any]] = lambda point: {}
    defaults: Mapping[str, Any] = field(default_factory=dict)
    sampling: Callable[[Study], Sampling] | None = (
        None  # optimize mode: made once the study is open
    )
    wrap: Callable[[str, Any], Any] = lambda name, value: value
    show: Callable[[str], None] = print


@shielded()
def open_engine(opening: Opening) -> Engine:
    """Take the sweep's lease, open its study and MLflow parent run, and read it back.

    A new study gets the experiment's next task number (unless the task API
    numbered the task already) and the study attributes that describe it.
    """
    from ivory_hydra.engine.crew import Crew
    from ivory_hydra.engine.lease import Lease
    from ivory_hydra.stores.format import StudyAttr
    from ivory_hydra.stores.ledger import ledger_for
    from ivory_hydra.stores.optuna_storage import open_storage
    from ivory_hydra.stores.sqlite_files import sqlite_file

    settings = opening.settings
    storage = open_storage(opening.storage_url)
    ledger = ledger_for(opening.storage_url)
    name = opening.study_name
    timing = {"interval": settings.heartbeat_interval, "grace": settings.grace_period}
    lease = None
    crew = None
    if opening.lease and sqlite_file(opening.storage_url) is not None:
        lease = Lease(ledger, name, **timing)  # SQLite: one sweeper at a time
        lease.acquire()
    elif opening.lease:  # a database server or a journal file: workers share the sweep
        crew = Crew(ledger, name, **timing)
        crew.join()
    try:
        study = Study.open(storage, name, settings.direction, settings.metric)
        attrs = study.user_attrs
        task = attrs.get(StudyAttr.TASK)
        if study.created or task is None:

            def number() -> str:
                return opening.task_name or (
                    f"task#{numbering.allocate(ledger, opening.experiment, 'task')}"
                )

            task = number() if crew is None else crew.name_task(number)
            study.set_attrs(
                {
                    StudyAttr.KIND: opening.kind,
                    StudyAttr.EXPERIMENT: opening.experiment,
                    StudyAttr.TASK: task,
                    **opening.study_attrs,
                }
            )
        parent_run_id = None
        if opening.mirror is not None:
            tags = {Tag.STUDY_NAME: study.name, **opening.parent_tags}
            previous = attrs.get(StudyAttr.PARENT_RUN)
            if previous is None and crew is not None:
                previous = ledger.get(f"parent/{name}")
            if previous is None and crew is None and not study.created:
                previous = opening.mirror.find_parent(study.name)  # stopped before recorded
            parent_run_id = opening.mirror.open_parent(str(task), tags, run_id=previous)
            shared = crew is not None and previous is None
            if shared and not ledger.compare_and_set(f"parent/{name}", None, parent_run_id):
                opening.mirror.delete_runs([parent_run_id])  # another worker's stands
                winner = ledger.get(f"parent/{name}")
                parent_run_id = opening.mirror.open_parent(str(task), tags, run_id=winner)
            if parent_run_id != previous:
                study.set_attrs({StudyAttr.PARENT_RUN: parent_run_id})
        engine = Engine(
            study=study,
            ledger=ledger,
            experiment=opening.experiment,
            task=str(task),
            plan=opening.plan,
            distributions=opening.distributions,
            settings=settings,
            value_of=opening.value_of,
            attrs_of=opening.attrs_of,
            defaults=opening.defaults,
            sampling=None if opening.sampling is None else opening.sampling(study),
            wrap=opening.wrap,
            mirror=opening.mirror,
            parent_run_id=parent_run_id,
            show=opening.show,
        )
        engine.lease = lease
        engine.crew = crew
        engine.load()
    except BaseException:
        if lease is not None:
            lease.release()
        if crew is not None:
            crew.leave()
        raise
    return engine

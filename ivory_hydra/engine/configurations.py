"""Configurations with repeats (a part of the engine): one trial, one job per repeat.

With repeats (folds, seeds) a plan point is a configuration: one Optuna trial,
with an MLflow run of its own under the sweep's parent run. Each repeat is a
job with its own run nested under the configuration's; the job records its
outcome in the trial (a record of its own, and its score as the intermediate
value at step = its index). The process that issued the configuration
concludes it once its repeats ended: the aggregate is the trial's value, and
a failed repeat fails it. The repeats that finished are kept: a configuration
run again (a rerun, a worker that died) copies them into its new trial and
runs only the missing ones. With a pruner, a configuration's repeats run one
after another, and the pruner may stop it after any of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ivory_hydra.core.aggregate import aggregate
from ivory_hydra.core.outcomes import BUDGET_SPENT, COMPLETE, FAIL, PRUNED, TRIAL_PRUNED, Outcome
from ivory_hydra.core.plan import Point
from ivory_hydra.engine.issuing import Issuing
from ivory_hydra.engine.results import Finished
from ivory_hydra.engine.state import Configuration
from ivory_hydra.signals import shielded
from ivory_hydra.stores import trials
from ivory_hydra.stores.format import Tag, TrialAttr, attr_tag, score_metrics
from ivory_hydra.stores.mlflow_mirror import ChildSpec, outcome_tags, run_status
from ivory_hydra.stores.trials import Assignment


def config_name(number: int) -> str:
    """A configuration's name: its trial's number.

    >>> config_name(3)
    'config#3'
    """
    return f"config#{number}"


class Configurations(Issuing):
    """Configurations and their repeats."""

    def run_configurations(self, points: Sequence[Point]) -> Iterator[list[Assignment]]:
        """Issue the configurations of ``points`` and run their missing repeats.

        Without a pruner every missing repeat runs in one batch; with one,
        repeat k of every live configuration runs, then repeat k+1. Once the
        budget is spent no round starts, and a configuration whose repeats are
        still missing is given back: its finished ones are kept for a resume.
        """
        configs = self.configure(points)
        if self.pruner is None:
            rounds: list[Callable[[Configuration], list[int]]] = [lambda c: list(c.missing)]
        else:
            rounds = [
                (lambda c, r=r: [r] if r in c.missing and not c.concluded else [])
                for r in range(self.plan.repeat_count)
            ]
        for which in rounds:
            if self.budgets.spent():
                break
            batch = self.repeat_jobs(configs, which)
            if batch:
                yield batch
                self.collect(batch)
        for config in configs:
            if not config.concluded:  # every repeat was kept, or the budget stopped it
                self._end(config)

    @shielded()
    def _end(self, config: Configuration) -> None:
        """Conclude a configuration, or give it back if the budget left repeats missing."""
        trial = self.study.storage.get_trial(config.trial_id)
        done = len(trials.repeat_records(trial))
        count = self.plan.repeat_count
        if done == count or not self.budgets.spent():
            self.conclude(config, trial)
            return
        assert self.budgets.stop is not None
        reason = f"{self.budgets.stop.reason} after {done} of {count} repeats (the rest run later)"
        self.finish_here(trial, Outcome(FAIL, None, reason, BUDGET_SPENT), config.run_id)
        config.concluded = True
        if self.sampling is not None:
            self.sampling.after(config.trial_id)

    @shielded()
    def configure(self, points: Sequence[Point]) -> list[Configuration]:
        """Create each configuration's WAITING trial (its finished repeats copied in)
        and its MLflow run."""
        configs = []
        count = self.plan.repeat_count
        for point in points:
            _, params = self._params_of(point)
            kept = self.board.kept.get(point.slot, {})
            attrs: dict[str, Any] = {
                TrialAttr.SLOT: point.slot,
                TrialAttr.STEP: point.step,
                TrialAttr.REPEATS: count,
                **{TrialAttr.repeat(r): record for r, record in kept.items()},
            }
            if self.sampling is None:
                attrs.update(self.attrs_of(point))
            scores = {r: rec["score"] for r, rec in kept.items() if rec.get("score") is not None}
            trial_id, number = self._create_trial(params, attrs, scores)
            later: dict[str, Any] = {TrialAttr.RUN_NAME: config_name(number)}
            if self.sampling is not None:
                point, params = self._sample(trial_id, point, params)
                later.update(self.attrs_of(point))
            run_id = self._create_child({**attrs, **later}, params, number)
            if run_id is not None:
                later[TrialAttr.MLFLOW_RUN] = run_id
                self._adopt_runs(kept, run_id)
            trials.set_attrs(self.study.storage, trial_id, later)
            missing = [r for r in range(count) if r not in kept]
            configs.append(
                Configuration(trial_id, number, config_name(number), point, params, run_id, missing)
            )
        self.configurations.update({c.trial_id: c for c in configs})
        return configs

    def _adopt_runs(self, kept: Mapping[int, Mapping[str, Any]], run_id: str) -> None:
        """Kept repeats' MLflow runs move under the configuration's new run."""
        for record in kept.values():
            if record.get("run_id"):
                self.mirror.reparent(str(record["run_id"]), run_id)

    @shielded()
    def repeat_jobs(
        self, configs: Sequence[Configuration], which: Callable[[Configuration], list[int]]
    ) -> list[Assignment]:
        """Number the repeats ``which`` picks of each configuration, with their MLflow runs."""
        pairs = [(c, r) for c in configs for r in which(c)]
        return self._issue_runs(pairs, self._repeat_job)

    def _repeat_job(
        self, pair: tuple[Configuration, int], run_name: str, run_number: int
    ) -> tuple[Assignment, dict[str, Any]]:
        """One repeat of a configuration, with its MLflow run nested in the configuration's:
        its assignment, and the params its run line shows."""
        config, repeat = pair
        values = {k: self.value_of(v) for k, v in self.plan.repeats[repeat].items()}
        params = {**config.params, **values}
        shown = {**{k: self.value_of(v) for k, v in config.point.params.items()}, **values}
        run_id = None
        if config.run_id is not None:
            tags = {
                Tag.STUDY_NAME: self.study.name,
                Tag.TRIAL_NUMBER: str(config.number),
                Tag.REPEAT: str(repeat),
                attr_tag(TrialAttr.SLOT): config.point.slot,
            }
            spec = ChildSpec(run_name, params, tags)
            run_id = self.mirror.create_child(config.run_id, spec)
        point = config.point
        job = Point(point.step, point.index, {**point.params, **self.plan.repeats[repeat]})
        assignment = Assignment(
            config.trial_id,
            config.number,
            run_name,
            job,
            params,
            run_id,
            repeat,
            run_number,
        )
        config.repeats[repeat] = assignment
        self.in_flight.append(assignment)
        return assignment, shown

    @shielded()
    def collect(
        self, batch: Sequence[Assignment], fallback: Mapping[int, Outcome] | None = None
    ) -> list[Finished]:
        """Read the batch's repeats back; conclude each configuration whose repeats ended.

        A repeat its job left unrecorded is recorded here (the launcher's
        outcome in ``fallback``, by job number, else failed).
        """
        if not self.plan.repeats:
            return super().collect(batch, fallback)
        self.in_flight = [a for a in self.in_flight if a not in batch]
        touched: dict[int, Configuration] = {}
        for assignment in batch:
            key = (assignment.trial_id, assignment.repeat)
            if key in self.collected_repeats:
                continue
            self.collected_repeats.add(key)
            config = self.configurations[assignment.trial_id]
            touched[config.trial_id] = config
            trial = self.study.storage.get_trial(assignment.trial_id)
            if assignment.repeat in trials.repeat_records(trial) or trial.state.is_finished():
                continue
            outcome = (fallback or {}).get(assignment.job) or Outcome(
                FAIL, None, "the job ended without recording an outcome"
            )
            if outcome.left:  # not started: the repeat stays missing, its run ends KILLED
                self.issued -= 1
                if assignment.mlflow_run_id:
                    self.mirror.settle(assignment.mlflow_run_id, outcome, config.number, self.names)
                continue
            self.budgets.count(outcome)
            extra = {"run": assignment.run_name, "run_id": assignment.mlflow_run_id}
            trials.record_repeat(
                self.study.storage, assignment.trial_id, int(assignment.repeat or 0), outcome, extra
            )
            if assignment.mlflow_run_id:
                self.mirror.settle(assignment.mlflow_run_id, outcome, config.number, self.names)
        results = []
        for config in touched.values():
            trial = self.study.storage.get_trial(config.trial_id)
            if trial.state.is_finished():  # failed by another process meanwhile
                config.concluded = True
                self.board.note(Finished.from_trial(trial))
                continue
            records = trials.repeat_records(trial)
            failed = any(r.get("state") == FAIL for r in records.values())
            done = all(r in records for r in range(self.plan.repeat_count))
            if failed or done or self._prunes(trial):
                results.append(self.conclude(config, trial))
        return results

    def _prunes(self, trial: Any) -> bool:
        """Whether the sweep's pruner stops a configuration after its repeats so far."""
        if self.pruner is None:
            return False
        if self._pruning_study is None:
            import optuna

            self._pruning_study = optuna.load_study(
                study_name=self.study.name, storage=self.study.storage, pruner=self.pruner
            )
        return bool(self.pruner.prune(self._pruning_study, trial))

    @shielded()
    def conclude(self, config: Configuration, trial: Any = None) -> Finished:
        """Finish a configuration's trial from its repeats: the aggregate, or a failure."""
        trial = trial or self.study.storage.get_trial(config.trial_id)
        records = trials.repeat_records(trial)
        outcome, std = self._aggregate(records)
        attrs = {TrialAttr.STD: std} if std is not None else {}
        trials.finish(self.study.storage, config.trial_id, outcome, attrs, start_if_waiting=True)
        fresh = self.study.storage.get_trial(config.trial_id)
        finished = Finished.from_trial(fresh)
        self.board.note(finished)
        config.concluded = True
        stored = trials.trial_outcome(fresh) or outcome
        if config.run_id is not None:
            metrics = score_metrics(stored, self.names)
            if std is not None:
                metrics[f"{self.names[0]}_std"] = std
            self.mirror.finish_child(
                config.run_id,
                run_status(stored),
                metrics=metrics,
                tags=outcome_tags(stored, config.number),
            )
        if self.sampling is not None:
            self.sampling.after(config.trial_id)
        return finished

    def _aggregate(self, records: Mapping[int, Mapping[str, Any]]) -> tuple[Outcome, float | None]:
        """A configuration's outcome from its repeats' records, and their spread."""
        count = self.plan.repeat_count
        for index in sorted(records):
            record = records[index]
            if record.get("state") == FAIL:
                reason = f"repeat {index} ({record.get('run')}) failed: {record.get('reason')}"
                return Outcome(FAIL, None, reason, record.get(TrialAttr.ERROR)), None
        complete = [records[r] for r in sorted(records) if records[r].get("state") == COMPLETE]
        stopped = len(records) < count or any(
            r.get(TrialAttr.ERROR) == TRIAL_PRUNED for r in records.values()
        )
        if not complete or (len(complete) < len(records) and not stopped):
            return Outcome(PRUNED, None, "its repeats reported no score"), None
        name = self.definition.aggregate
        objectives = self.settings.objectives
        if objectives.single:
            result = aggregate(name, [float(r["score"]) for r in complete])
            values: tuple[float, ...] | None = None
            score: float | None = result.score
        else:
            columns = list(zip(*(r["values"] for r in complete), strict=True))
            results = [aggregate(name, [float(v) for v in column]) for column in columns]
            result, values, score = results[0], tuple(r.score for r in results), None
        if stopped:
            reason = f"pruned after {len(records)} of {count} repeats"
            return Outcome(PRUNED, score, reason, TRIAL_PRUNED, values), result.std
        return Outcome(COMPLETE, score, None, None, values), result.std

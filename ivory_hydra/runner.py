"""Running a sweep's plan through Hydra's launcher, batch by batch.

Each batch is numbered and recorded before it is launched; each job's result is
scored and recorded when the batch returns; in chain mode each step ends with
its decision. A resumed sweep skips every job that already finished.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivory_hydra.display import run_line
from ivory_hydra.errors import SweepDefinitionError
from ivory_hydra.overrides import SweepParam
from ivory_hydra.plan import Plan, Point, best_index
from ivory_hydra.scores import MissingMetricError, Outcome, as_number, outcome_from_value

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher
    from hydra.types import HydraContext

    from ivory_hydra.job_callback import MlflowJobCallback
    from ivory_hydra.mirror import MlflowMirror
    from ivory_hydra.progress import ProgressBar
    from ivory_hydra.recorder import Recorder, RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """What the runner needs of the sweeper's config."""

    metric: str | None
    direction: str
    max_batch_size: int | None
    verbose: int


class SweepRunner:
    """Steps through a plan batch by batch; skips what a previous run finished."""

    def __init__(
        self,
        *,
        launcher: Launcher,
        hydra_context: HydraContext,
        recorder: Recorder,
        mirror: MlflowMirror | None,
        params: Sequence[SweepParam],
        plan: Plan,
        settings: RunSettings,
    ) -> None:
        self.launcher = launcher
        self.hydra_context = hydra_context
        self.recorder = recorder
        self.mirror = mirror
        self.by_name = {p.name: p for p in params}
        self.plan = plan
        self.settings = settings
        self.failed: list[RunRecord] = []
        self.records: list[RunRecord] = []
        self.pending: list[RunRecord] = []
        self.probing = False
        self.winners: dict[str, Any] = {}
        self._bar: ProgressBar | None = None
        self._done = 0
        self._callback: MlflowJobCallback | None = None

    # ------------------------------------------------------------ output

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def close_bar(self) -> None:
        """Close the progress bar if there is one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _advance(self, count: int) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.advance_to(self._done)

    def decisions_by_name(self) -> dict[str, Any]:
        """Chain decisions as plain values."""
        return {name: value.value for name, value in self.winners.items()}

    # ------------------------------------------------------------ run

    def run(self) -> list[Sequence[JobReturn]]:
        """Run every step of the plan and return the launcher's results per batch."""
        from ivory_hydra.progress import ProgressBar

        self._bar = ProgressBar(self.plan.total, self.settings.verbose)
        installed = [self._bar.callback()]
        if self.mirror is not None:
            from ivory_hydra.job_callback import MlflowJobCallback

            self._callback = MlflowJobCallback(self.mirror.tracking_uri)
            installed.append(self._callback)
        callbacks = self.hydra_context.callbacks.callbacks
        callbacks.extend(installed)
        try:
            return self._run_steps()
        finally:
            # Jobs of a later sweep in this process must not see this sweep's runs.
            callbacks[:] = [c for c in callbacks if not any(c is i for i in installed)]

    def _run_steps(self) -> list[Sequence[JobReturn]]:
        # A fresh sweep with a metric runs its first job alone: a metric missing
        # from that job's mapping stops the sweep before anything else starts.
        self.probing = self.settings.metric is not None and not self.recorder.counts()
        done = self.recorder.finished_by_slot()
        decisions = self.recorder.decisions
        returns: list[Sequence[JobReturn]] = []
        for step in range(self.plan.num_steps):
            points = self.plan.points(step, self.winners)
            todo = [p for p in points if p.slot not in done]
            self._advance(len(points) - len(todo))
            if len(todo) < len(points):
                log.info(f"Resuming: {len(points) - len(todo)} finished jobs are not run again")
            for batch in self._batches(todo):
                returns.append(self._launch(batch))
            self._decide(step, len(points), decisions)
        return returns

    def _batches(self, points: list[Point]) -> list[list[Point]]:
        size = self.settings.max_batch_size or len(points) or 1
        batches = [points[i : i + size] for i in range(0, len(points), size)]
        if self.probing and not self.records and batches and len(batches[0]) > 1:
            batches = [[batches[0][0]], batches[0][1:], *batches[1:]]
        return batches

    def _launch(self, points: list[Point]) -> Sequence[JobReturn]:
        overrides = [self._overrides(p) for p in points]
        records = self.recorder.start(
            points,
            params=[{k: v.value for k, v in p.params.items()} for p in points],
            attrs=[{"overrides": " ".join(o)} for o in overrides],
        )
        self.records.extend(records)
        self.pending = list(records)
        for record in records:
            self._print(run_line(record.name, record.params))
        if self._callback is not None:
            self._callback.run_ids = {
                r.trial_number: r.mlflow_run_id for r in records if r.mlflow_run_id
            }
        results: list[JobReturn] = []
        for start, end in _contiguous(records):
            results.extend(
                self.launcher.launch(
                    overrides[start:end], initial_job_idx=records[start].trial_number
                )
            )
        for record, result in zip(records, results, strict=True):
            self.pending.remove(record)
            self._record(record, result)
        self._advance(len(records))
        return results

    def _overrides(self, point: Point) -> list[str]:
        return [
            self.by_name[name].override(point.params[name])
            for name in self.by_name
            if name in point.params
        ]

    def abandon(self, reason: str) -> None:
        """Fail the jobs of the batch in flight (the sweep stops; a resume reruns them)."""
        pending, self.pending = self.pending, []
        if pending and self.mirror is not None:
            from ivory_hydra.active_run import abandon_child

            abandon_child(reason)
        for record in pending:
            self.recorder.finish(record, Outcome("fail", None, reason))

    def _record(self, record: RunRecord, result: JobReturn) -> None:
        from hydra.core.utils import JobStatus

        attrs: dict[str, Any] = {}
        closed = getattr(result, "ivory_child_closed_failed", None)
        output_dir = _output_dir(result)
        if output_dir:
            attrs["output_dir"] = output_dir
        metric = self.settings.metric
        missing: MissingMetricError | None = None
        if result.status == JobStatus.FAILED:
            error = result._return_value
            outcome = Outcome("fail", None, f"{type(error).__name__}: {error}")
        else:
            value = result._return_value
            logged = None
            if as_number(value) is None and not isinstance(value, Mapping):
                logged = self.recorder.logged_score(record)
            try:
                outcome = outcome_from_value(value, metric, logged)
            except MissingMetricError as error:
                outcome, missing = Outcome("fail", None, str(error)), error
        self.recorder.finish(record, outcome, attrs, closed)
        if missing is not None and self.probing and len(self.records) == 1:
            raise SweepDefinitionError(f"hydra.sweeper.metric={metric}: {missing.args[0]}")
        if outcome.failed:
            self.failed.append(record)

    def _decide(self, step: int, size: int, decisions: dict[str, int]) -> None:
        name = self.plan.stepping(step)
        if name is None or not self.plan.use_best_param:
            return
        if name in decisions:
            index = decisions[name]
        else:
            scores = self.recorder.step_scores(step, size)
            best = best_index(scores, self.settings.direction)
            index = 0 if best is None else best
            self.recorder.decide(name, index)
        value = self.plan.swept[name][index]
        self.winners[name] = value
        log.info(f"Chain: {name} is fixed at {value.text}")


def _contiguous(records: Sequence[RunRecord]) -> list[tuple[int, int]]:
    """Runs of records whose trial numbers follow each other (one launch each)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i].trial_number != records[i - 1].trial_number + 1:
            spans.append((start, i))
            start = i
    return spans


def _output_dir(result: JobReturn) -> str | None:
    from omegaconf import OmegaConf

    if result.hydra_cfg is None:
        return None
    value = OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir")
    return None if value is None else str(value)

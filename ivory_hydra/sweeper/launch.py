"""Launching the engine's batches through Hydra's launcher.

Each batch's jobs run as :class:`~ivory_hydra.job.hydra_task.TrialTask`,
which owns its trial in the job's own process; the launcher's return values
serve only for jobs that could not reach the storage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.display import plural
from ivory_hydra.sweeper.errors import SweepDefinitionError, SweepFailedError

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ivory_hydra.core.objectives import Objectives
    from ivory_hydra.core.outcomes import Outcome
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.engine.results import Finished
    from ivory_hydra.job.ticket import Ticket
    from ivory_hydra.stores.trials import Assignment
    from ivory_hydra.sweeper.definition import SweepDefinition
    from ivory_hydra.sweeper.settings import SweeperSettings

log = logging.getLogger(__name__)


def run_batches(
    engine: Engine,
    sweep: SweepDefinition,
    settings: SweeperSettings,
    ticket: Ticket,
    hydra: tuple[HydraContext, TaskFunction, DictConfig],
) -> list[Sequence[JobReturn]]:
    """Walk the engine's plan, launching each batch; return the launcher's returns.

    Raises :class:`SweepFailedError` when ``max_failure_rate`` stops the sweep.
    """
    from hydra.core.plugins import Plugins

    from ivory_hydra._compat import basic_launcher_lines_once, is_basic_launcher
    from ivory_hydra.job.hydra_task import TrialTask
    from ivory_hydra.progress import ProgressBar
    from ivory_hydra.sweeper.composition import compose_once
    from ivory_hydra.sweeper.returns import kept_on_disk

    hydra_context, task_function, config = hydra
    done = engine.done
    if done:
        log.info(f"Resuming: {plural(done, 'finished job')} not run again")
    repeats = engine.plan.repeat_count
    bar = ProgressBar(engine.plan.jobs, settings.verbose, done=done * repeats)
    engine.show = bar.write
    task = TrialTask(task_function, ticket, on_end=bar.hook())
    # Jobs that differ only in values are served from one composition of the
    # config files (the launcher composes every job otherwise).
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=compose_once(hydra_context), task_function=task, config=config
    )
    if not is_basic_launcher(launcher):  # its workers must not outlive us
        from ivory_hydra.engine.orphans import watch

        watch()
    objectives = engine.settings.objectives
    returns: list[Sequence[JobReturn]] = []
    try:
        with basic_launcher_lines_once(launcher):  # our run lines name each job
            probing = objectives.metrics != ()
            size = settings.batch_size or default_batch(engine, config)
            for batch in engine.walk(size, first_alone=probing):
                launched = _launch(launcher, task, sweep, batch)
                results = engine.collect(batch, fallbacks(batch, launched, objectives))
                returns.append([kept_on_disk(r) for r in launched])
                bar.advance_to(done * repeats + engine.issued)
                if probing:
                    probing = False
                    check_first(engine, batch, results, objectives)
                    note_plain_score(batch, launched, objectives)
                check_failure_rate(engine, settings.max_failure_rate, results)
    finally:
        bar.close()
    return returns


def default_batch(engine: Engine, config: DictConfig) -> int | None:
    """Without max_batch_size: one batch (up to the engine's limit), except that
    optimize mode asks one trial at a time, so that its sampler learns from every
    result; a pruner of repeats judges a configuration against those that completed,
    so configurations go one at a time too; a worker among several takes as many
    jobs as its launcher runs at once; and so does a sweep with a budget (``timeout``,
    ``max_failures``), so that no job waits in a launcher's queue when it is spent.
    """
    from omegaconf import OmegaConf

    pruning = engine.pruner is not None and bool(engine.plan.repeats)
    alone = not engine.coordination.shared and not engine.budgets.budget.limits
    if engine.plan.mode != "optimize" and alone and not pruning:
        return None
    parallel = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    return parallel if isinstance(parallel, int) and parallel > 0 else 1


def _launch(
    launcher: Any, task: Any, sweep: SweepDefinition, batch: list[Assignment]
) -> list[JobReturn]:
    task.assignments = {a.job: a for a in batch}
    overrides = [sweep.overrides(a.point) for a in batch]
    results: list[JobReturn] = []
    for start, end in contiguous([a.job for a in batch]):
        results.extend(launcher.launch(overrides[start:end], initial_job_idx=batch[start].job))
    return results


def check_failure_rate(engine: Engine, rate: float | None, results: Sequence[Finished]) -> None:
    """Stop when a batch failed more often than ``max_failure_rate`` allows (the
    summary names it as what stopped the sweep, as it names a budget)."""
    if rate is None or not results:
        return
    from ivory_hydra.core.budgets import Stop

    ran = [r for r in results if not r.outcome.left]  # a budget left the others unrun
    failed = [r for r in ran if r.outcome.failed]
    if ran and len(failed) / len(ran) > rate:
        reason = (
            f"max_failure_rate={rate:g}: {len(failed)} of {len(ran)} jobs of a batch failed "
            f"({failed[0].run_name}: {failed[0].outcome.reason})"
        )
        engine.budgets.stopped(Stop("max_failure_rate", reason))
        raise SweepFailedError(f"hydra.sweeper.{reason}; the sweep stops")


def check_first(
    engine: Engine, batch: list[Assignment], results: Sequence[Finished], objectives: Objectives
) -> None:
    """A metric missing from the first job's mapping is bad input: undo the sweep."""
    first = results[0] if results else None
    if first is None or not first.outcome.missing_metric:
        return
    engine.undo(batch)
    metric = objectives.metric_arg
    raise SweepDefinitionError(f"hydra.sweeper.metric={metric}: {first.outcome.reason}")


def note_plain_score(
    batch: Sequence[Assignment], launched: Sequence[JobReturn], objectives: Objectives
) -> None:
    """Say once, at the first job, that a plain number it returned is scored under the
    metric's name (a mapping names its numbers; the job may not log that metric)."""
    from hydra.core.utils import JobStatus

    from ivory_hydra.core.outcomes import plain_score_note

    if not batch or not launched or launched[0].status != JobStatus.COMPLETED:
        return
    metric = objectives.metric_arg
    note = plain_score_note(metric, launched[0].return_value, batch[0].run_name)
    if note is not None:
        log.warning(f"hydra.sweeper.metric={metric}: {note}")


def contiguous(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Spans of positions whose numbers follow each other (one launch each).

    >>> contiguous([4, 5, 6, 9, 10])
    [(0, 3), (3, 5)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            spans.append((start, i))
            start = i
    return spans


def fallbacks(
    batch: Sequence[Assignment], returns: Sequence[JobReturn], objectives: Objectives
) -> dict[int, Outcome]:
    """Outcomes from the launcher's returns, for jobs that could not reach the storage
    (or that a budget kept from starting)."""
    from hydra.core.utils import JobStatus

    from ivory_hydra._compat import job_exception
    from ivory_hydra.core.budgets import NotStarted
    from ivory_hydra.core.outcomes import outcome_from_error, score_or_fail

    outcomes = {}
    for assignment, result in zip(batch, returns, strict=False):
        if result.status == JobStatus.COMPLETED and isinstance(result.return_value, NotStarted):
            outcomes[assignment.job] = result.return_value.outcome
        elif result.status == JobStatus.FAILED:
            outcomes[assignment.job] = outcome_from_error(job_exception(result))
        elif result.status == JobStatus.COMPLETED:
            outcomes[assignment.job] = score_or_fail(
                result.return_value, objectives.metric_arg, None, objectives.count
            )
    return outcomes

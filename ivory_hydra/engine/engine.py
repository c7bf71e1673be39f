"""The engine: one walk of a product, chain or optimize plan, for both front ends.

It takes slots from its coordination (alone, or shared with other workers),
issues them as runs, reads each finished run's outcome back from the storage,
makes chain decisions, and knows what is finished for resume. The Hydra
sweeper launches its batches through Hydra's launcher; the task API yields
them one run at a time. Jobs own their trials (:mod:`ivory_hydra.job.session`):
the engine never holds a result that the storage does not.

Its parts: :mod:`~ivory_hydra.engine.recovery` (reading back, reaping,
settling MLflow), :mod:`~ivory_hydra.engine.issuing` (runs out, outcomes in),
:mod:`~ivory_hydra.engine.decisions` (chain decisions) and
:mod:`~ivory_hydra.engine.closing` (leaving and closing a sweep);
:mod:`~ivory_hydra.engine.opening` opens a sweep and hands its engine over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from ivory_hydra import signals
from ivory_hydra.engine.closing import Closing
from ivory_hydra.stores.trials import Assignment

log = logging.getLogger(__name__)

#: Batches never exceed this many runs when ``max_batch_size`` is not set, so
#: that a sweep of a million jobs starts its first job in seconds.
DEFAULT_BATCH_LIMIT = 100


class Engine(Closing):
    """Walks one plan over one study; see the module docstring."""

    def walk(
        self, batch_size: int | None = None, first_alone: bool = False
    ) -> Iterator[list[Assignment]]:
        """Hand out the plan's runs in batches, step by step.

        The caller runs each batch (the jobs finish their own trials), then
        may call :meth:`collect` with fallback outcomes; whatever it leaves
        uncollected is collected when the walk goes on. ``first_alone`` runs
        the sweep's very first job alone (a fresh sweep with a metric checks
        its first result before starting the rest). Once the invocation's
        budget is spent, the walk ends (its slots not run are left for others,
        or for a resume).
        """
        size = batch_size or DEFAULT_BATCH_LIMIT
        alone = first_alone and not self.board.done and not self.board.failed
        coordination = self.coordination
        for step in range(self.plan.num_steps):
            if self.decided(step):
                continue  # finished and decided before this worker joined (or ran again)
            total = self.plan.size(step)
            told = False
            while coordination.alive:
                signals.check()  # a stop signal whose exception Python dropped
                if self.budgets.spent():
                    return
                taken = coordination.take(step, total, 1 if alone else size)
                if coordination.adopted():
                    self.refresh()  # a worker died: fail its trials, run its slots here
                if taken:
                    alone = False
                    yield from self._run(step, taken)
                    continue
                if any(s == step for s, _ in self.waiting.values()):
                    yield from self._run(step, self.wait_elsewhere(step))
                    continue
                if taken is None:
                    break
                if not told:
                    told = True
                    self._tell_waiting(step, total)
                coordination.wait()
            if not coordination.alive:
                return
            if coordination.shared:
                self.refresh()
            self.decide(step)
        self.walked = True

    def _run(self, step: int, indices: Sequence[int]) -> Iterator[list[Assignment]]:
        """Issue the slots ``indices`` of ``step`` that are still to run, as one batch."""
        todo = []
        resolved = []
        for index in indices:
            point = self.plan.point(step, index, self.winners)
            if point.slot in self.board.done:
                resolved.append(index)
            elif point.slot in self.elsewhere:
                self.waiting[point.slot] = (step, index)
            else:
                todo.append(point)
        self.coordination.resolve(step, resolved)
        if not todo or self.budgets.spent():  # taken, not run: left to others or a resume
            return
        if self.plan.repeats:
            yield from self.run_configurations(todo)
        else:
            batch = self.issue(todo)
            yield batch
            self.collect(batch)
        # a slot a budget left unrun is not resolved: another worker or a resume runs it
        self.coordination.resolve(step, [p.index for p in todo if p.slot not in self.board.left])

    def _tell_waiting(self, step: int, total: int) -> None:
        name = self.plan.stepping(step)
        what = f"{name}, " if name else ""
        done = sum(1 for i in range(total) if f"{step}.{i}" in self.board.done)
        log.info(f"Waiting for the other workers to end step {step} ({what}{done} of {total} done)")

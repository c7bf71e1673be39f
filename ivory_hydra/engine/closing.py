"""Closing a sweep (or task), a part of the engine: leaving, closing and undoing.

Closing leaves the coordination; the one process that closes the sweep writes
its summary, brings MLflow in line with the study and ends the parent run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ivory_hydra.engine.decisions import Deciding
from ivory_hydra.engine.results import Summary
from ivory_hydra.signals import shielded
from ivory_hydra.stores.format import StudyAttr, Tag
from ivory_hydra.stores.trials import Assignment


class Closing(Deciding):
    """Leaving, closing and undoing a sweep."""

    def summary(self) -> Summary:
        """The best run, the decisions and the failures so far."""
        repeats = len(self.plan.repeats)
        summary = self.board.summary(self.task, self.plan.total, self.decisions, repeats)
        summary.stopped_by = self.budgets.stop if summary.left else None
        return summary

    @shielded()
    def leave(self) -> bool:
        """Stop taking work; True when this process closes the sweep.

        The closer reads every worker's results, for the summary.
        """
        if self.closer is None:
            self.closer = self.coordination.leave(self.walked)
            if self.closer and self.coordination.shared:
                self.refresh()
        return self.closer

    @shielded()
    def close(
        self,
        summary: Summary | None = None,
        *,
        status: str | None = None,
        artifacts: Sequence[Any] = (),
    ) -> None:
        """Leave; the closer stores the summary, settles MLflow and ends the parent run."""
        self.closed = True
        if not self.leave():
            return
        summary = summary or self.summary()
        self.study.set_attrs({StudyAttr.SUMMARY: summary.as_dict()})
        failures = self.mirror.failures  # earlier ones are the reconcile's to mend
        synced = self.reconcile()
        self._close_parent(summary, status or summary.status, artifacts)
        self.mirror_lags = not synced or self.mirror.failures > failures
        if self.mirror.enabled and not self.mirror_lags:
            self.study.set_attrs({StudyAttr.MIRROR_SYNCED: True})

    def _close_parent(self, summary: Summary, status: str, artifacts: Sequence[Any]) -> None:
        if self.parent_run_id is None:
            return
        best = summary.best
        metrics = {}
        params: dict[str, Any] = {}
        tags = {}
        if best is not None and best.score is not None and math.isfinite(best.score):
            metrics[f"best_{self.names[0]}"] = best.score
            params = best.params
            tags[Tag.BEST_RUN] = best.run_name
        if summary.pareto:
            tags[Tag.PARETO_RUNS] = " ".join(f.run_name for f in summary.pareto)
        self.mirror.close_parent(
            self.parent_run_id,
            params=params,
            metrics=metrics,
            tags=tags,
            artifacts=artifacts,
            status=status,
        )

    @shielded()
    def undo(self, batch: Sequence[Assignment]) -> None:
        """Undo a sweep that must not have started: its MLflow runs, and its study if new.

        Numbers taken from the experiment's ledger stay taken.
        """
        self.closed = True
        try:
            runs = [a.mlflow_run_id for a in batch if a.mlflow_run_id]
            if self.study.created and self.parent_run_id:
                runs.append(self.parent_run_id)
            self.mirror.delete_runs(runs)
            if self.study.created:
                self.study.delete()
        finally:
            self.closer = self.coordination.leave(False)

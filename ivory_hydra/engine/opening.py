"""Opening and closing a sweep (or task): its coordination, study, task name and parent run.

Opening joins the sweep's coordination, opens (or creates) its study, names its
task once, opens its MLflow parent run and reads back what earlier runs left.
Closing leaves the coordination; the one process that closes the sweep writes
its summary, brings MLflow in line with the study and ends the parent run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.plan import Point
from ivory_hydra.engine.decisions import Deciding
from ivory_hydra.engine.results import Summary
from ivory_hydra.signals import shielded
from ivory_hydra.stores.format import FORMAT_VERSION, StudyAttr, Tag
from ivory_hydra.stores.mlflow_bound import MirrorLagging
from ivory_hydra.stores.trials import Assignment

if TYPE_CHECKING:
    from ivory_hydra.engine.coordination import Coordination
    from ivory_hydra.engine.definition import Definition
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.study import Study


class Closing(Deciding):
    """Leaving, closing and undoing a sweep."""

    def summary(self) -> Summary:
        """The best run, the decisions and the failures so far."""
        repeats = len(self.plan.repeats)
        return self.board.summary(self.task, self.plan.total, self.decisions, repeats)

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


@dataclass
class Opening:
    """Everything :func:`open_engine` needs to open (or resume) a sweep or task."""

    storage_url: str
    study_name: str
    experiment: str
    kind: str
    definition: Definition
    study_attrs: Mapping[str, Any] = field(default_factory=dict)
    parent_tags: Mapping[str, str] = field(default_factory=dict)
    task_name: str | None = None
    mirror: MlflowMirror | None = None
    lease: bool = True
    attrs_of: Callable[[Point], dict[str, Any]] = lambda point: {}
    wrap: Callable[[str, Any], Any] = lambda name, value: value
    show: Callable[[str], None] = print


@shielded()
def open_engine(opening: Opening) -> Engine:
    """Join the sweep, open its study and MLflow parent run, and read it back.

    A new study gets the experiment's next task number (unless the task API
    numbered the task already) and the study attributes that describe it.
    """
    from ivory_hydra.engine.crew import Crew
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.engine.solo import Lease, Solo
    from ivory_hydra.stores import numbering
    from ivory_hydra.stores.beats import beats_for
    from ivory_hydra.stores.ledger import ledger_for
    from ivory_hydra.stores.mlflow_mirror import NullMirror
    from ivory_hydra.stores.optuna_storage import open_storage
    from ivory_hydra.stores.sqlite_files import sqlite_file
    from ivory_hydra.stores.study import Study, check_format

    definition = opening.definition
    settings = definition.settings
    url, name = opening.storage_url, opening.study_name
    storage = open_storage(url)
    ledger = ledger_for(url)
    timing = {"interval": settings.heartbeat_interval, "grace": settings.grace_period}
    if not opening.lease:
        coordination: Coordination = Solo()  # a task of the API: a study of its own
    elif sqlite_file(url) is not None:
        coordination = Solo(Lease(ledger, name, **timing))  # SQLite: one sweeper at a time
    else:  # a database server or a journal file: workers share the sweep
        coordination = Crew(ledger, beats_for(url), name, **timing)
    coordination.join()
    try:
        study = Study.open(storage, name, settings.objectives)
        attrs = study.user_attrs
        if check_format(name, attrs, created=study.created) != FORMAT_VERSION:
            study.set_attrs({StudyAttr.FORMAT: FORMAT_VERSION})  # older formats: nothing moves
        task = attrs.get(StudyAttr.TASK)
        if study.created or task is None:

            def number() -> str:
                return opening.task_name or (
                    f"task#{numbering.allocate(ledger, opening.experiment, 'task')}"
                )

            task = coordination.name_task(number)
            study.set_attrs(
                {
                    StudyAttr.KIND: opening.kind,
                    StudyAttr.EXPERIMENT: opening.experiment,
                    StudyAttr.TASK: task,
                    StudyAttr.FORMAT: FORMAT_VERSION,
                    **opening.study_attrs,
                }
            )
        mirror = opening.mirror or NullMirror()
        parent_run_id = _open_parent(study, mirror, str(task), opening, coordination)
        if parent_run_id is not None and parent_run_id != attrs.get(StudyAttr.PARENT_RUN):
            study.set_attrs({StudyAttr.PARENT_RUN: parent_run_id})
        if mirror.enabled and attrs.get(StudyAttr.MIRROR_SYNCED) is not False:
            study.set_attrs({StudyAttr.MIRROR_SYNCED: False})  # until the closer settles it
        engine = Engine(
            study=study,
            ledger=ledger,
            coordination=coordination,
            mirror=mirror,
            experiment=opening.experiment,
            task=str(task),
            definition=definition,
            parent_run_id=parent_run_id,
            attrs_of=opening.attrs_of,
            sampling=definition.sampling(study) if definition.plan.mode == "optimize" else None,
            wrap=opening.wrap,
            show=opening.show,
        )
        engine.load()
    except BaseException:
        coordination.leave(False)
        raise
    return engine


def _open_parent(
    study: Study, mirror: MlflowMirror, task: str, opening: Opening, coordination: Coordination
) -> str | None:
    """The sweep's MLflow parent run: the one recorded, or found, or a new one.

    Among workers, the first parent offered stands.
    """
    if not mirror.enabled:
        return None
    tags = {Tag.STUDY_NAME: study.name, **opening.parent_tags}
    previous = study.user_attrs.get(StudyAttr.PARENT_RUN) or coordination.shared_parent()
    if previous is None and not coordination.shared and not study.created:
        previous = mirror.find_parent(study.name)  # stopped before it was recorded
    try:
        parent = mirror.open_parent(task, tags, run_id=previous)
        if previous is None and parent is not None:
            standing = coordination.share_parent(parent)
            if standing != parent:  # another worker's stands
                mirror.delete_runs([parent])
                parent = mirror.open_parent(task, tags, run_id=standing)
    except MirrorLagging:  # the closer or the next run opens it
        mirror.fell_behind()
        return previous
    return parent

"""Opening a sweep (or task): its coordination, study, task name and parent run.

Opening joins the sweep's coordination, opens (or creates) its study, names its
task once, opens its MLflow parent run and reads back what earlier runs left,
then hands the opened :class:`~ivory_hydra.engine.engine.Engine` over. Closing
is the engine's own part, :mod:`~ivory_hydra.engine.closing`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.plan import Point
from ivory_hydra.signals import shielded
from ivory_hydra.stores.format import FORMAT_VERSION, Keys, StudyAttr, Tag
from ivory_hydra.stores.mlflow_bound import MirrorLagging

if TYPE_CHECKING:
    from ivory_hydra.engine.coordination import Coordination
    from ivory_hydra.engine.definition import Definition
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.study import Study


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
    started: float = field(default_factory=time.time)  # the invocation's start: its timeout's


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
            budget=definition.budget.started(
                opening.started, Keys.failures(name, coordination.invocation)
            ),
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

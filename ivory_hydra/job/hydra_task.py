"""The app's task function, run as the owner of its trial: what runs inside each Hydra job.

The sweeper hands Hydra's launcher a :class:`TrialTask` in place of the app's
task function. Launchers ship it with every job (joblib, Ray and submitit
pickle it), so in the job's own process it finds the job's assignment by
``hydra.job.num``, starts the trial, runs the app, and records the outcome in
Optuna and MLflow as soon as the job ends. The app's return value is passed on
unchanged; an exception fails the job only (``sys.exit(n)`` included).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivory_hydra import signals
from ivory_hydra.core.budgets import NotStarted
from ivory_hydra.core.outcomes import PRUNED, outcome_from_error
from ivory_hydra.core.redact import redact_text
from ivory_hydra.errors import StoreError
from ivory_hydra.job.budget import spent_before_start
from ivory_hydra.job.devices import held, recorded
from ivory_hydra.job.session import JobSession
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.stores.format import Files, Tag, TrialAttr
from ivory_hydra.stores.trials import Assignment

log = logging.getLogger(__name__)

#: The file in a failed job's output folder that holds its full traceback.
TRACEBACK_FILE = Files.TRACEBACK

_warned_unreachable = False


class JobExitError(RuntimeError):
    """The app called ``sys.exit()``: that job failed, and the sweep goes on."""


def redact_folder(folder: Path) -> None:
    """Hide URL passwords in the text files of ``folder``, in place.

    Hydra writes the job's overrides into ``.hydra/hydra.yaml`` before the
    job starts, a storage URL's password included.
    """
    for path in folder.iterdir():
        if not path.is_file():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        hidden = redact_text(text)
        if hidden != text:
            path.write_text(hidden)


class TrialTask:
    """Wraps the app's task function so that each job owns its trial."""

    def __init__(
        self, task_function: Any, ticket: Ticket, on_end: Callable[[], None] | None = None
    ) -> None:
        self.task_function = task_function
        self.ticket = ticket
        self.on_end = on_end  # picklable; called after each job (e.g. a progress bar)
        self.assignments: dict[int, Assignment] = {}  # by hydra.job.num, set before each launch

    def __call__(self, cfg: Any) -> Any:
        """Run one job of the sweep."""
        from hydra.core.hydra_config import HydraConfig

        signals.check()  # a stop signal whose exception Python dropped
        hydra_cfg = HydraConfig.get()
        assignment = self.assignments.get(hydra_cfg.job.num)
        if assignment is None:  # not a job of this sweep's batches
            return self.task_function(cfg)
        output_dir = Path(str(hydra_cfg.runtime.output_dir))
        hydra_dir = output_dir / str(hydra_cfg.output_subdir) if hydra_cfg.output_subdir else None
        if hydra_dir is not None and hydra_dir.is_dir():
            redact_folder(hydra_dir)
        try:
            # the trial stays WAITING (its creator lives) while the job waits for a device,
            # and the budget is checked once the wait is over: no job starts past it
            with held(self.ticket, assignment.run_name, assignment.trial_id) as devices:
                stop = spent_before_start(self.ticket)
                if stop is not None:  # given back: the sweeper leaves it to a resume
                    log.info("[%s] not started: %s", assignment.run_name, stop.reason)
                    return NotStarted(stop.reason)
                return self._run(cfg, assignment, output_dir, hydra_dir, devices)
        finally:
            if self.on_end is not None:
                self.on_end()

    def _run(
        self,
        cfg: Any,
        assignment: Assignment,
        output_dir: Path,
        hydra_dir: Path | None,
        devices: tuple[int, ...],
    ) -> Any:
        session = self._begin(assignment, output_dir)
        finish: dict[str, Any] = {
            "tags": {Tag.OUTPUT_DIR: str(output_dir)},
            "artifact_dirs": [hydra_dir] if hydra_dir is not None and hydra_dir.is_dir() else [],
        }
        try:
            finish.update(recorded(session, devices, finish["tags"]))
            late = self.ticket.budget.spent(time.time())  # opening the stores took a while
            if late is not None:
                log.info("[%s] not started: %s", assignment.run_name, late.reason)
                if session is not None:
                    session.finish(NotStarted(late.reason).outcome, **finish)
                return NotStarted(late.reason)
            value = self.task_function(cfg)
        except BaseException as error:
            if session is not None:
                session.returned()
            outcome = outcome_from_error(error)
            if outcome.state == PRUNED:  # the pruner stopped it: not a failure
                log.info("[%s] %s", assignment.run_name, outcome.reason)
                if session is not None:
                    session.finish(outcome, **finish)
                return None
            text = "".join(traceback.format_exception(error))
            path = output_dir / TRACEBACK_FILE
            try:
                path.write_text(text)
            except OSError:
                path = None
            where = f" (traceback: {path})" if path else ""
            log.error("[%s] failed: %s%s", assignment.run_name, outcome.reason, where)
            if session is not None:
                attrs = {TrialAttr.TRACEBACK: str(path)} if path else {}
                attrs.update(finish.pop("attrs", {}))
                session.finish(outcome, error=text, attrs=attrs, **finish)
            if isinstance(error, SystemExit):
                raise JobExitError(outcome.reason) from None
            raise
        if session is not None:
            session.returned()
            session.finish(session.conclude(returned=value), **finish)
        return value

    def _begin(self, assignment: Assignment, output_dir: Path) -> JobSession | None:
        global _warned_unreachable
        try:
            return JobSession.begin(self.ticket, assignment, output_dir=str(output_dir))
        except StoreError as error:
            if not _warned_unreachable:
                _warned_unreachable = True
                log.warning(
                    "This job's process cannot reach the Optuna storage (%s); "
                    "the sweeper records its jobs' outcomes when their batch returns.",
                    error,
                )
            return None

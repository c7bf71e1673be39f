"""A running job's ownership of its trial and its MLflow child run.

:meth:`JobSession.begin` runs in the process that runs the job: it starts the
trial (Optuna's WAITING-to-RUNNING compare-and-set, which stamps the job's own
start time), makes the child run MLflow's active run, and starts beating.
:meth:`JobSession.finish` records the outcome in both stores as soon as the job
ends. The Hydra sweeper's jobs and the task API's runs both go through here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.outcomes import (
    FAIL,
    INTERRUPTED,
    PRUNED,
    STOPPED,
    TRIAL_PRUNED,
    Outcome,
    as_number,
    outcome_from_error,
    score_or_fail,
)
from ivory_hydra.errors import IvoryError, StoreError
from ivory_hydra.job.budget import count_job_failure
from ivory_hydra.job.ticket import Ticket
from ivory_hydra.signals import shielded
from ivory_hydra.stores import trials
from ivory_hydra.stores.format import TrialAttr, attr_tag, score_metrics
from ivory_hydra.stores.liveness import HOST, Beater, beat_record
from ivory_hydra.stores.mlflow_bound import lagging
from ivory_hydra.stores.mlflow_mirror import outcome_tags, run_status
from ivory_hydra.stores.optuna_storage import open_storage
from ivory_hydra.stores.retry import set_storage_retry

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

    from ivory_hydra.stores.mlflow_bound import Budget
    from ivory_hydra.stores.trials import Assignment

log = logging.getLogger(__name__)

_current = threading.local()
#: What a job's body returned when it returned nothing at all (see JobSession.conclude).
NOTHING: Any = object()


class TrialTakenError(IvoryError):
    """The job's trial was already started or finished by another process."""


#: The sessions running in this process (any thread).
_RUNNING: set[JobSession] = set()
_watching: list[int] = []  # the driver pid this process watches, once


def _watch_driver(ticket: Ticket) -> None:
    """In a worker that the sweeper started itself (loky, submitit_local), follow the sweeper.

    Such a worker outlives a killed sweeper and, busy or idle, would run on
    unseen. A daemon thread checks five times a second that its parent is still
    the sweeper; when it is not, running jobs fail their trials and the process
    exits. A job whose code already returned records its own outcome first.
    """
    driver = ticket.driver_pid
    if _watching or ticket.driver_host != HOST or os.getpid() == driver or os.getppid() != driver:
        return
    _watching.append(driver)

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(0.2)
        for session in list(_RUNNING):
            session.orphaned()
        os._exit(1)

    threading.Thread(target=watch, name="ivory-hydra-watchdog", daemon=True).start()


def current_session() -> JobSession | None:
    """The session of the job running in this thread, if any (a finished one is not:
    another thread, such as a watchdog, may have finished it)."""
    session = getattr(_current, "session", None)
    return None if session is None or session._finished else session


class JobSession:
    """The trial and MLflow child run of one running job, owned by its process."""

    def __init__(self, ticket: Ticket, assignment: Assignment, storage: BaseStorage) -> None:
        self.ticket = ticket
        self.assignment = assignment
        self.storage = storage
        self.mlflow_active = False
        self.budget: Budget | None = None  # what MLflow may still take of the job
        self.mirror_lags = False  # the trial records that its MLflow run lags
        self._beater: Beater | None = None
        self._finished = False
        self._recorded = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.current_thread()  # where the child run is active
        self._pruner: tuple[Any, Any] | None = None
        self.output_dir: str | None = None
        self.pruned = False  # should_prune() said so
        self._returned = False  # the job's own code returned

    @classmethod
    def begin(
        cls,
        ticket: Ticket,
        assignment: Assignment,
        *,
        output_dir: str | None = None,
    ) -> JobSession:
        """Start the trial, activate the child run, start beating.

        Raises :class:`~ivory_hydra.errors.StoreError` when the storage cannot
        be reached from this process and :class:`TrialTakenError` when another
        process owns the trial. A stop signal waits until it returns.
        """
        with shielded():
            return cls._begin(ticket, assignment, output_dir)

    @classmethod
    def _begin(cls, ticket: Ticket, assignment: Assignment, output_dir: str | None) -> JobSession:
        try:
            url = ticket.storage_url
        except Exception as error:  # noqa: BLE001 - e.g. ${oc.env:...} unset in this process
            raise StoreError(f"cannot resolve storage={ticket.storage!r}: {error}") from None
        set_storage_retry(ticket.storage_retry)
        storage = open_storage(url)
        repeat = assignment.repeat is not None  # a configuration's repeats share its trial
        start = trials.join if repeat else trials.start
        if not start(storage, assignment.trial_id):
            raise TrialTakenError(
                f"{assignment.run_name} (trial {assignment.number}) was started or finished "
                "elsewhere; this job does not run it again"
            )
        session = cls(ticket, assignment, storage)
        session.output_dir = output_dir
        if output_dir and not repeat:
            trials.set_attrs(storage, assignment.trial_id, {TrialAttr.OUTPUT_DIR: output_dir})
        uri = ticket.mlflow_uri
        if uri:
            session._activate(uri)
        session._beater = Beater(ticket.heartbeat_interval, session._beat).start()
        _current.session = session
        _RUNNING.add(session)
        _watch_driver(ticket)
        return session

    def _activate(self, uri: str) -> None:
        """Make the child run active within the job's MLflow budget; else the trial
        records that the mirror lags (the closer or the next rerun settles the run)."""
        from ivory_hydra.stores.mlflow_bound import Budget, MirrorLagging

        self.budget = Budget(uri, self.ticket.mlflow_timeout)
        if self.assignment.mlflow_run_id:
            from ivory_hydra.job.active_run import activate

            try:
                activate(uri, self.assignment.mlflow_run_id, self.budget)
                self.mlflow_active = True
                return
            except MirrorLagging:
                pass
        self._note_lag()

    def _note_lag(self) -> None:
        """Record in the (unfinished) trial that its MLflow run lags."""
        if not self.mirror_lags:
            self.mirror_lags = True
            trials.set_attrs(self.storage, self.assignment.trial_id, {TrialAttr.MIRROR_LAGS: True})

    # ------------------------------------------------------------ liveness

    def _beat(self) -> None:
        with self._lock:
            if not self._finished:
                trials.beat(self.storage, self.assignment.trial_id)

    def returned(self) -> None:
        """The job's own code returned (or raised): its outcome is being recorded."""
        self._returned = True

    def orphaned(self) -> None:
        """The sweeper process that started this worker died: fail the job's trial.

        A job whose code has returned is left to record its own outcome.
        """
        if self._returned:
            self._recorded.wait(timeout=60)
            return
        reason = f"its sweeper process (pid {self.ticket.driver_pid}) died while the job ran"
        if self.finish(Outcome(FAIL, None, reason, INTERRUPTED)):
            log.error("%s: %s; the job stops", self.assignment.run_name, reason)
        else:  # the job itself is recording its outcome: let it end
            self._recorded.wait(timeout=60)

    # ------------------------------------------------------------ pruning

    def report(self, value: float, step: int) -> None:
        """Record an intermediate value of the job at ``step``.

        A repeat's trial holds its configuration's repeats as intermediate
        values, so a repeat logs its own to its MLflow run (metric
        ``intermediate``) instead.
        """
        number = as_number(value)
        if number is None:
            raise TypeError(f"report() takes a number, not {value!r}")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise TypeError(f"report() takes a step that is an int >= 0, not {step!r}")
        if self.assignment.repeat is None:
            self.storage.set_trial_intermediate_value(self.assignment.trial_id, step, number)
        elif self.mlflow_active:
            from ivory_hydra.job.active_run import log_metric

            log_metric("intermediate", number, step)

    def should_prune(self) -> bool:
        """Whether the sweep's pruner would stop this job now (False without a pruner).

        The pruner compares the intermediate values this job reported with
        those of the study's other trials, read from the storage.
        """
        if self.ticket.pruner is None or self.ticket.study_name is None:
            return False
        if self.assignment.repeat is not None:  # the sweep prunes across repeats itself
            return False
        if self._pruner is None:
            import optuna

            pruner = self.ticket.pruner
            if isinstance(pruner, Mapping):  # a config node: built in this process
                from hydra.utils import instantiate

                pruner = instantiate(dict(pruner))
            study = optuna.load_study(
                study_name=self.ticket.study_name, storage=self.storage, pruner=pruner
            )
            self._pruner = (pruner, study)
        pruner, study = self._pruner
        prune = bool(pruner.prune(study, self.storage.get_trial(self.assignment.trial_id)))
        self.pruned = self.pruned or prune
        return prune

    # ------------------------------------------------------------ the end

    def conclude(
        self, *, returned: Any = NOTHING, error: BaseException | None = None, stopped: str = ""
    ) -> Outcome:
        """The outcome of a job's (or run's) body, for both front ends.

        What it raised, else what it returned (or reported), else: stopped by
        the pruner, or by its loop (``stopped`` says why), or ended unscored.
        """
        if error is not None:
            return outcome_from_error(error)
        if returned is not NOTHING:
            return self.score(returned)
        if self.pruned:  # should_prune() said so and no score came
            return Outcome(PRUNED, None, "pruned by the pruner", TRIAL_PRUNED)
        if stopped:
            return Outcome(FAIL, None, stopped, STOPPED)
        return self.score(None)

    def score(self, value: Any) -> Outcome:
        """The outcome of a job that returned (or reported) ``value``."""
        objectives = self.ticket.objectives
        metric = objectives.metric
        logged = None
        if metric is not None and as_number(value) is None and not isinstance(value, Mapping):
            from ivory_hydra.job.active_run import latest_metric

            logged = latest_metric(metric) if self.mlflow_active else None
        return score_or_fail(value, objectives.metric_arg, logged, objectives.count)

    def last_value(self) -> float | None:
        """The last intermediate value the job reported (a pruned trial keeps it)."""
        values = self.storage.get_trial(self.assignment.trial_id).intermediate_values
        return values[max(values)] if values else None

    def finish(
        self,
        outcome: Outcome,
        *,
        error: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        artifact_dirs: Sequence[Path] = (),
    ) -> bool:
        """Record the outcome in Optuna and MLflow; False if the trial was finished already.

        ``attrs`` go to the trial (and, as ``ivory.<key>`` tags, to the child
        run); ``tags`` to the child run only.
        """
        with self._lock:
            if self._finished:
                return False
            self._finished = True
        try:
            with shielded():  # a stop signal waits until both stores have it
                return self._record(outcome, error, attrs, tags, artifact_dirs)
        finally:
            self._recorded.set()

    def _record(
        self,
        outcome: Outcome,
        error: str | None,
        attrs: Mapping[str, Any] | None,
        tags: Mapping[str, str] | None,
        artifact_dirs: Sequence[Path],
    ) -> bool:
        if self._beater is not None:
            self._beater.stop()
        if current_session() is self:
            _current.session = None
        _RUNNING.discard(self)
        pruned = outcome.state == PRUNED and outcome.error == TRIAL_PRUNED
        if pruned and outcome.score is None and self.assignment.repeat is None:
            outcome = Outcome(PRUNED, self.last_value(), outcome.reason, outcome.error)
        if self.budget is not None and lagging(self.budget.store):
            self._note_lag()  # MLflow is down here: the trial says so before it finishes
        if self.assignment.repeat is None:
            recorded = trials.finish(
                self.storage, self.assignment.trial_id, outcome, attrs, beat=beat_record()
            )
        else:  # one repeat: its configuration is concluded by the process that issued it
            extra = {
                "run": self.assignment.run_name,
                "run_id": self.assignment.mlflow_run_id,
                TrialAttr.OUTPUT_DIR: self.output_dir,
                **(attrs or {}),
            }
            recorded = trials.record_repeat(
                self.storage, self.assignment.trial_id, self.assignment.repeat, outcome, extra
            )
        if recorded:
            count_job_failure(self.ticket, outcome)
        if self.mlflow_active and self.budget is not None:
            from ivory_hydra.job.active_run import deactivate, end_elsewhere

            metrics = score_metrics(outcome, self.ticket.objectives.metric_names)
            all_tags = outcome_tags(outcome, self.assignment.number)
            all_tags.update({attr_tag(key): str(value) for key, value in (attrs or {}).items()})
            all_tags.update(tags or {})
            status = run_status(outcome)
            if threading.current_thread() is self._thread:
                deactivate(
                    status, metrics=metrics, tags=all_tags, error=error, artifact_dirs=artifact_dirs
                )
            else:  # a watchdog: MLflow's active run belongs to the job's thread
                end_elsewhere(self.budget, str(self.assignment.mlflow_run_id), status, all_tags)
        return recorded

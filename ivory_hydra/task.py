"""The Python task API, as in Ivory's "Multiple Runs" page.

>>> import tempfile, ivory_hydra as ivory
>>> client = ivory.create_client(tempfile.mkdtemp(), mlflow=False)
>>> task = client.create_task("torch")
>>> for run in task.product(fold=range(2), lr=1e-4, verbose=0):
...     run.report(0.1 * run.params["fold"])
[run#0] lr=0.0001 fold=0
[run#1] lr=0.0001 fold=1
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.display import run_line
from ivory_hydra.distributions import distributions_for
from ivory_hydra.plan import Plan, best_index, check_direction
from ivory_hydra.progress import ProgressBar
from ivory_hydra.ranges import Range
from ivory_hydra.recorder import Recorder, RunRecord
from ivory_hydra.redact import redact_url
from ivory_hydra.scores import Outcome, outcome_from_value
from ivory_hydra.store import allocate_numbers, open_storage, storage_url

if TYPE_CHECKING:
    from ivory_hydra.mirror import MlflowMirror

_UNSET = object()


def create_client(
    directory: str | Path = ".",
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    mlflow: bool = True,
) -> Client:
    """A client whose embedded stores live in ``directory``.

    ``storage`` is an Optuna storage URL (default: ``<directory>/optuna.db``);
    ``tracking_uri`` an MLflow tracking URI (default: ``<directory>/mlflow.db``).
    ``mlflow=False`` turns the MLflow mirror off.
    """
    return Client(directory, storage=storage, tracking_uri=tracking_uri, mlflow=mlflow)


class Client:
    """Holds where runs are recorded; creates tasks."""

    def __init__(
        self,
        directory: str | Path = ".",
        *,
        storage: str | None = None,
        tracking_uri: str | None = None,
        mlflow: bool = True,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.storage_url = storage_url(storage, self.directory)
        try:
            open_storage(self.storage_url)  # fail here, before any task, if it cannot open
        except ValueError as error:
            raise ValueError(f"storage={redact_url(self.storage_url)}: {error}") from None
        self.mlflow_enabled = mlflow
        self.tracking_uri = tracking_uri or f"sqlite:///{self.directory / 'mlflow.db'}"
        stores = f"Optuna storage used by this client: {redact_url(self.storage_url)}"
        if mlflow:
            stores += (
                f"\nMLflow tracking store used by this client: {redact_url(self.tracking_uri)}"
            )
        print(stores, file=sys.stderr)

    def __repr__(self) -> str:
        return f"Client(directory={str(self.directory)!r})"

    def create_task(self, name: str) -> Task:
        """A new task in the experiment ``name``; tasks are numbered task#0, task#1, ..."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a task needs an experiment name, not {name!r}")
        number = allocate_numbers(open_storage(self.storage_url), name, "task", 1)
        return Task(self, name, f"task#{number}")

    def mirror(self, experiment: str) -> MlflowMirror | None:
        """The MLflow mirror for ``experiment``, or None when MLflow is off."""
        if not self.mlflow_enabled:
            return None
        from ivory_hydra.mirror import MlflowMirror

        return MlflowMirror(self.tracking_uri, experiment)


class Run:
    """One run of a task: ``name``, ``params``, and ``report(score)``."""

    def __init__(self, record: RunRecord) -> None:
        self._record = record
        self._reported: Any = _UNSET

    @property
    def name(self) -> str:
        """``run#N``, numbered across the experiment."""
        return self._record.name

    @property
    def params(self) -> dict[str, Any]:
        """The run's params, in the order they are printed."""
        return dict(self._record.params)

    @property
    def trial_number(self) -> int:
        """The run's Optuna trial number within its task's study."""
        return self._record.trial_number

    @property
    def mlflow_run_id(self) -> str | None:
        """The id of the run's MLflow child run (None when MLflow is off)."""
        return self._record.mlflow_run_id

    @property
    def reported(self) -> bool:
        """True once ``report`` was called."""
        return self._reported is not _UNSET

    def report(self, score: float | Mapping[str, float]) -> None:
        """Report this run's score: a number, or a mapping read with the chain's metric."""
        self._reported = score

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, params={self.params!r})"


class Task:
    """A task of an experiment: one Optuna study and one MLflow parent run."""

    def __init__(self, client: Client, experiment: str, name: str) -> None:
        self.client = client
        self.experiment = experiment
        self.name = name
        self.study_name = f"{experiment}.{name}"

    def __repr__(self) -> str:
        return (
            f"Task(name={self.name!r}, experiment={self.experiment!r}, "
            f"study_name={self.study_name!r})"
        )

    def product(self, verbose: int = 1, **params: Any) -> Iterator[Run]:
        """Runs over the cartesian product of the params; the last varies fastest."""
        plan = Plan.from_params("product", params)
        return self._runs(plan, _log_scaled(params), "minimize", None, verbose)

    def chain(
        self,
        use_best_param: bool = True,
        metric: str | None = None,
        direction: str = "minimize",
        verbose: int = 1,
        **params: Any,
    ) -> Iterator[Run]:
        """Runs that step through one param at a time, in the order given.

        With ``use_best_param``, each finished param is fixed at the value whose
        run reported the best score (ties to the earliest; failed, NaN and
        unreported runs never win; the first value if none reported).
        """
        check_direction(direction)
        plan = Plan.from_params("chain", params, use_best_param)
        return self._runs(plan, _log_scaled(params), direction, metric, verbose)

    def _runs(
        self, plan: Plan, log: set[str], direction: str, metric: str | None, verbose: int
    ) -> Iterator[Run]:
        values = {**{k: [v] for k, v in plan.fixed.items()}, **plan.swept}
        recorder = Recorder(
            storage_url=self.client.storage_url,
            experiment=self.experiment,
            study_name=self.study_name,
            task_name=self.name,
            direction=direction,
            metric=metric,
            distributions=distributions_for(values, log),
            mirror=self.client.mirror(self.experiment),
            study_attrs={"mode": plan.mode, "params": _describe(plan)},
            parent_tags={"ivory.mode": plan.mode, "ivory.params": _describe(plan)},
        )
        return _drive(recorder.open(), plan, direction, metric, verbose)


def _log_scaled(params: dict[str, Any]) -> set[str]:
    """The params swept over a log-scale ``Range``."""
    return {k for k, v in params.items() if isinstance(v, Range) and v.log}


def _describe(plan: Plan) -> str:
    parts = [f"{k}={v!r}" for k, v in plan.fixed.items()]
    parts += [f"{k}={v!r}" for k, v in plan.swept.items()]
    return " ".join(parts)


def _drive(
    recorder: Recorder, plan: Plan, direction: str, metric: str | None, verbose: int
) -> Iterator[Run]:
    bar = ProgressBar(plan.total, verbose)
    winners: dict[str, Any] = {}
    current: Run | None = None
    failed = False
    try:
        for step in range(plan.num_steps):
            points = plan.points(step, winners)
            for point in points:
                [record] = recorder.start([point])
                current = Run(record)
                bar.write(run_line(current.name, current.params))
                _activate(recorder, record)
                yield current
                _finish(recorder, current, metric)
                current = None
                bar.advance_to(bar.done + 1)
            name = plan.stepping(step)
            if name is not None and plan.use_best_param:
                index = best_index(recorder.step_scores(step, len(points)), direction)
                index = 0 if index is None else index
                winners[name] = plan.swept[name][index]
                recorder.decide(name, index)
    except BaseException:
        failed = True
        raise
    finally:
        if current is not None:
            _finish(recorder, current, metric, stopped=True)
        recorder.close(failed=failed)
        bar.close()


def _activate(recorder: Recorder, record: RunRecord) -> None:
    if recorder.mirror is not None and record.mlflow_run_id is not None:
        from ivory_hydra.active_run import activate_child

        activate_child(recorder.mirror.tracking_uri, record.mlflow_run_id)


def _finish(recorder: Recorder, run: Run, metric: str | None, stopped: bool = False) -> None:
    mirror = recorder.mirror
    logged = None if run.reported else recorder.logged_score(run._record)
    if run.reported or logged is not None:
        try:
            outcome = outcome_from_value(run._reported if run.reported else None, metric, logged)
        except KeyError as error:
            outcome = Outcome("fail", None, str(error.args[0]))
    elif stopped:
        outcome = Outcome("fail", None, "the loop stopped before this run was reported")
    else:
        outcome = outcome_from_value(None, None)  # finished without a score
    closed_failed = None
    if mirror is not None and run.mlflow_run_id is not None:
        from ivory_hydra.active_run import deactivate_child

        if deactivate_child(failed=outcome.failed, error=outcome.reason):
            closed_failed = outcome.failed
    recorder.finish(run._record, outcome, closed_failed=closed_failed)

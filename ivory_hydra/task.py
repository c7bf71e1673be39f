"""The Python task API, as in Ivory's "Multiple Runs" page: a thin driver of the engine.

>>> import tempfile, ivory_hydra as ivory
>>> client = ivory.create_client(tempfile.mkdtemp(), mlflow=False)
>>> task = client.create_task("torch")
>>> for run in task.product(fold=range(2), lr=1e-4, verbose=0):
...     run.report(0.1 * run.params["fold"])
[run#0] lr=0.0001 fold=0
[run#1] lr=0.0001 fold=1
"""

from __future__ import annotations

import atexit
import sys
import weakref
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.outcomes import check_reported
from ivory_hydra.core.plan import split_params
from ivory_hydra.core.ranges import Range
from ivory_hydra.core.redact import redact_url
from ivory_hydra.stores.format import TASK, StudyAttr, Tag

if TYPE_CHECKING:
    from ivory_hydra.engine.opening import Opening
    from ivory_hydra.engine.results import Finished, Summary
    from ivory_hydra.job.session import JobSession
    from ivory_hydra.job.ticket import Ticket
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.trials import Assignment

_UNSET = object()
#: Runs of tasks whose loop is still open; closed at exit so nothing stays RUNNING.
_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()


def create_client(
    directory: str | Path = ".",
    *,
    storage: str | None = None,
    tracking_uri: str | None = None,
    mlflow: bool = True,
    storage_retry: float = 300.0,
    devices: Any = None,
    devices_per_job: int = 1,
) -> Client:
    """A client whose embedded stores live in ``directory``.

    ``storage`` is an Optuna storage URL (default: ``<directory>/optuna.db``);
    ``tracking_uri`` an MLflow tracking URI (default: ``<directory>/mlflow.db``).
    ``mlflow=False`` turns the MLflow mirror off. A store that cannot be
    reached is a ``ValueError`` here, before anything is written. A storage
    connection lost later is waited out for ``storage_retry`` seconds.
    ``devices`` (ids, or ``"auto"``) are held ``devices_per_job`` at a time by
    each run, as by a sweep's jobs: ``run.devices``, ``CUDA_VISIBLE_DEVICES``.
    """
    return Client(
        directory,
        storage=storage,
        tracking_uri=tracking_uri,
        mlflow=mlflow,
        storage_retry=storage_retry,
        devices=devices,
        devices_per_job=devices_per_job,
    )


class Client:
    """Holds where runs are recorded; creates tasks."""

    def __init__(
        self,
        directory: str | Path = ".",
        *,
        storage: str | None = None,
        tracking_uri: str | None = None,
        mlflow: bool = True,
        storage_retry: float = 300.0,
        devices: Any = None,
        devices_per_job: int = 1,
    ) -> None:
        from ivory_hydra.errors import StoreError
        from ivory_hydra.gpus import resolve_devices
        from ivory_hydra.stores.mlflow_client import check_tracking_uri, resolve_tracking_uri
        from ivory_hydra.stores.optuna_storage import check_storage, storage_url
        from ivory_hydra.stores.retry import set_storage_retry

        set_storage_retry(storage_retry)  # raises ValueError below 0
        self.devices = resolve_devices(devices, devices_per_job)  # raises ValueError
        self.devices_per_job = devices_per_job
        self.storage_retry = float(storage_retry)
        self.directory = Path(directory).absolute()
        self.storage_url = storage_url(storage, self.directory)
        self.mlflow_enabled = mlflow
        self.tracking_uri = resolve_tracking_uri(
            tracking_uri or f"sqlite:///{self.directory / 'mlflow.db'}", self.directory
        )
        checks = [("storage", self.storage_url, check_storage)]
        if mlflow:
            checks.append(("tracking_uri", self.tracking_uri, check_tracking_uri))
        for name, url, check in checks:
            try:
                check(url)
            except StoreError as error:
                raise ValueError(f"{name}={redact_url(url)}: {error}") from None
        self.directory.mkdir(parents=True, exist_ok=True)
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
        from ivory_hydra.stores.ledger import ledger_for
        from ivory_hydra.stores.numbering import allocate

        if not isinstance(name, str) or not name:
            raise ValueError(f"a task needs an experiment name, not {name!r}")
        number = allocate(ledger_for(self.storage_url), name, "task")
        return Task(self, name, f"task#{number}")

    def mirror(self, experiment: str) -> MlflowMirror | None:
        """The MLflow mirror for ``experiment``, or None when MLflow is off."""
        if not self.mlflow_enabled:
            return None
        from ivory_hydra.stores.mlflow_mirror import MlflowMirror

        script = getattr(sys.modules.get("__main__"), "__file__", None)
        return MlflowMirror(self.tracking_uri, experiment, script)


class Run:
    """One run of a task: ``name``, ``params``, ``report(score)``.

    The run's trial and MLflow child run are started when the run is handed
    out, and finished when the loop body hands control back. With the client's
    ``devices``, ``devices`` is the tuple of device ids the run holds while its
    loop body runs (also ``CUDA_VISIBLE_DEVICES`` then); otherwise ``()``.
    """

    def __init__(self, assignment: Assignment, session: JobSession) -> None:
        self._assignment = assignment
        self._session = session
        self._reported: Any = _UNSET
        self.devices: tuple[int, ...] = ()  # held while the run's loop body runs
        self._recorded: dict[str, Any] = {"tags": {}}  # the devices, as its end records them

    @property
    def name(self) -> str:
        """``run#N``, numbered across the experiment."""
        return self._assignment.run_name

    @property
    def params(self) -> dict[str, Any]:
        """The run's params, in the order they are printed.

        In chain mode, as in Ivory, only the params stepped so far: later ones
        are left at their defaults.
        """
        return dict(self._assignment.params)

    @property
    def trial_number(self) -> int:
        """The run's Optuna trial number within its task's study."""
        return self._assignment.number

    @property
    def mlflow_run_id(self) -> str | None:
        """The id of the run's MLflow child run (None when MLflow is off)."""
        return self._assignment.mlflow_run_id

    @property
    def reported(self) -> bool:
        """True once a score was reported."""
        return self._reported is not _UNSET

    def report(self, value: Any, step: int | None = None) -> None:
        """Report this run's score, or with ``step`` an intermediate value.

        A score is a number, a sequence of numbers or a mapping of numbers
        (read with the chain's ``metric``); anything else raises ``TypeError``.
        """
        if step is not None:
            self._session.report(value, step)
            return
        self._reported = check_reported(value)

    def should_prune(self) -> bool:
        """Whether the task's pruner would stop this run now (False without one)."""
        return self._session.should_prune()

    def _finish(self, stopped: bool = False, reason: str | None = None) -> None:
        from ivory_hydra.job.session import NOTHING

        stop = (reason or "the loop stopped during this run") if stopped else ""
        returned = self._reported if self.reported else NOTHING
        self._session.finish(
            self._session.conclude(returned=returned, stopped=stop), **self._recorded
        )

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, params={self.params!r})"


class Task:
    """A task of an experiment: one Optuna study and one MLflow parent run."""

    def __init__(self, client: Client, experiment: str, name: str) -> None:
        self.client = client
        self.experiment = experiment
        self.name = name
        self.study_name = f"{experiment}.{name}"
        self.summary: Summary | None = None  # set when the task's loop ends

    @property
    def best(self) -> Finished | None:
        """The best run once the loop ended (``run_name``, ``score``, ``params``), else None."""
        return None if self.summary is None else self.summary.best

    def __repr__(self) -> str:
        return (
            f"Task(name={self.name!r}, experiment={self.experiment!r}, "
            f"study_name={self.study_name!r})"
        )

    def product(
        self,
        verbose: int = 1,
        repeat: str | list[str] = (),  # type: ignore[assignment]
        aggregate: str = "mean",
        **params: Any,
    ) -> Iterator[Run]:
        """Runs over the cartesian product of the params; the last varies fastest.

        ``repeat`` names swept params whose values repeat each configuration
        (folds, seeds): every yielded run is one repeat, and a configuration's
        score is the ``aggregate`` (mean, median, min or max) of its repeats'.
        """
        fixed, swept = split_params(params)
        return self._runs(
            "product", params, fixed, swept, verbose, repeat=repeat, aggregate=aggregate
        )

    def chain(
        self,
        use_best_param: bool = True,
        metric: str | None = None,
        direction: str = "minimize",
        verbose: int = 1,
        repeat: str | list[str] = (),  # type: ignore[assignment]
        aggregate: str = "mean",
        **params: Any,
    ) -> Iterator[Run]:
        """Runs that step through one param at a time, in the order given.

        With ``use_best_param``, each finished param is fixed at the value whose
        run reported the best score (ties to the earliest; failed, NaN and
        unreported runs never win; the first value if none reported). With
        ``repeat``, each step decides on its configurations' aggregates.
        """
        fixed, swept = split_params(params)
        return self._runs(
            "chain",
            params,
            fixed,
            swept,
            verbose,
            repeat=repeat,
            aggregate=aggregate,
            direction=direction,
            metric=metric,
            use_best_param=use_best_param,
        )

    def optimize(
        self,
        n_trials: int,
        sampler: Any = None,
        pruner: Any = None,
        direction: str | list[str] = "minimize",
        metric: str | list[str] | None = None,
        verbose: int = 1,
        repeat: str | list[str] = (),  # type: ignore[assignment]
        aggregate: str = "mean",
        **params: Any,
    ) -> Iterator[Run]:
        """Runs whose swept values an Optuna sampler picks (TPE by default).

        A ``Range`` is a span to draw from (ints, or floats with their step;
        one built with ``num`` lists its values), a list is a set of choices,
        an Optuna distribution is used as it is, and any other value is fixed.
        ``direction`` may be a list (several objectives; each run then reports
        one value per objective). ``sampler`` and ``pruner`` are Optuna's
        samplers and pruners, or nodes with ``_target_`` as in the sweeper's
        config; ``run.report(value, step=k)`` and ``run.should_prune()`` use
        the pruner. With ``repeat``, the sampler picks configurations, each run
        once per repeat, and ``n_trials`` counts configurations.
        """
        names = [repeat] if isinstance(repeat, str) else list(repeat)
        fixed, space = _search_space({k: v for k, v in params.items() if k not in names})
        _, swept = split_params({k: v for k, v in params.items() if k in names})
        return self._runs(
            "optimize",
            params,
            fixed,
            swept,
            verbose,
            repeat=names,
            aggregate=aggregate,
            space=space,
            n_trials=n_trials,
            sampler=sampler,
            pruner=pruner,
            direction=direction,
            metric=metric,
        )

    def _runs(
        self,
        mode: str,
        params: dict[str, Any],
        fixed: dict[str, Any],
        swept: dict[str, list[Any]],
        verbose: int,
        **options: Any,
    ) -> Iterator[Run]:
        """Check the task's definition (nothing is written before), then drive it: ``params``
        as given, split into ``fixed`` and ``swept``; ``options``, the mode's own arguments."""
        from ivory_hydra.engine.definition import Definition
        from ivory_hydra.engine.opening import Opening

        log = {k for k, v in params.items() if isinstance(v, Range) and v.log}
        definition = Definition.build(
            mode=mode,
            fixed=fixed,
            swept=swept,
            log=log,
            storage_retry=self.client.storage_retry,
            **options,
        )
        plan = definition.plan
        shown = {**plan.fixed, **plan.swept, **definition.space}
        described = " ".join(f"{k}={v!r}" for k, v in shown.items())
        mirror = self.client.mirror(self.experiment)
        opening = Opening(
            storage_url=self.client.storage_url,
            study_name=self.study_name,
            experiment=self.experiment,
            kind=TASK,
            definition=definition,
            study_attrs={StudyAttr.DEFINITION: {"mode": plan.mode, "params": described}},
            parent_tags={Tag.MODE: plan.mode, Tag.DEFINITION: described},
            task_name=self.name,
            mirror=mirror,
            lease=False,
        )
        tracking_uri = None if mirror is None else mirror.tracking_uri
        ticket = definition.ticket(self.client.storage_url, tracking_uri, self.study_name)
        ticket = replace(
            ticket, devices=self.client.devices, devices_per_job=self.client.devices_per_job
        )
        runs = _drive(self, opening, ticket, verbose)
        _OPEN.add(runs)
        return runs


def _drive(task: Task, opening: Opening, ticket: Ticket, verbose: int) -> Iterator[Run]:
    """Yield the engine's runs one at a time; each is finished when the loop body returns."""
    from ivory_hydra.engine.opening import open_engine
    from ivory_hydra.engine.results import stop_status
    from ivory_hydra.job.devices import held, recorded
    from ivory_hydra.job.session import JobSession
    from ivory_hydra.progress import ProgressBar
    from ivory_hydra.signals import interrupts, received

    engine = open_engine(opening)
    bar = ProgressBar(opening.definition.plan.jobs, verbose)
    engine.show = bar.write
    current: Run | None = None
    status = None  # the summary's, unless a stop or an error ends the loop
    try:
        with interrupts():
            try:
                for batch in engine.walk(1):  # one run, or one configuration's repeats
                    for assignment in batch:
                        current = Run(assignment, JobSession.begin(ticket, assignment))
                        with held(ticket, current.name, assignment.trial_id) as devices:
                            current.devices = devices
                            current._recorded.update(
                                recorded(current._session, devices, current._recorded["tags"])
                            )
                            yield current
                        current._finish()
                        current = None
                        bar.advance_to(engine.issued)
            finally:
                signum = received()
                if current is not None:
                    reason = f"stopped by signal {signum}" if signum else None
                    current._finish(stopped=True, reason=reason)
                    engine.collect([current._assignment])
                if signum:
                    status = "KILLED"
    except GeneratorExit:
        raise
    except BaseException as error:
        status = stop_status(error)
        raise
    finally:
        task.summary = engine.summary()
        engine.close(task.summary, status=status)
        bar.close()
        if verbose:
            from ivory_hydra.core.display import summary_lines

            metric = ticket.objectives.metric_arg
            direction = ticket.objectives.direction
            lines = summary_lines(task.summary.as_dict(), metric, "run", direction)
            print("\n".join(lines))


def _search_space(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split optimize's params into fixed values and Optuna distributions to draw from."""
    from optuna.distributions import BaseDistribution, CategoricalDistribution

    from ivory_hydra.core.space import Interval, space_from_text
    from ivory_hydra.stores.distributions import interval_distribution

    fixed: dict[str, Any] = {}
    space: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, BaseDistribution):
            space[name] = value
        elif isinstance(value, Range):
            if value.num is not None:
                span: Interval | list[Any] = list(value)
            elif value.text is not None:
                span = space_from_text(value.text)
            else:
                span = Interval(
                    min(value.start, value.stop),
                    max(value.start, value.stop),
                    value.step,
                    False,
                    value.is_int,
                )
            space[name] = (
                interval_distribution(span)
                if isinstance(span, Interval)
                else CategoricalDistribution(span)
            )
        elif isinstance(value, (list, tuple)):
            if len(value) == 1:
                fixed[name] = value[0]
            else:
                space[name] = CategoricalDistribution(list(value))
        else:
            fixed[name] = value
    return fixed, space


@atexit.register
def _close_open_tasks() -> None:
    """A loop left open (``break`` with the iterator still referenced) ends at exit."""
    for runs in list(_OPEN):
        runs.close()

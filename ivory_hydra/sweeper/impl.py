"""The logic of the ``ivory`` Hydra sweeper (the plugin module is a thin shell).

A sweep's overrides are translated into the engine's one definition
(:mod:`~ivory_hydra.sweeper.definition`); input is checked, and both stores
are checked reachable, before anything is written. Then the engine hands out
batches, Hydra's launcher runs them (:mod:`~ivory_hydra.sweeper.launch`), each
job records its own outcome, and the closer reports
(:mod:`~ivory_hydra.sweeper.report`). With ``dry_run`` it prints the plan
instead (:mod:`~ivory_hydra.sweeper.dry_run`) and writes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.display import plan_size
from ivory_hydra.core.redact import redact_text, redact_url
from ivory_hydra.errors import StorageUnavailableError, StoreError, SweepBusyError
from ivory_hydra.stores.format import SWEEP, StudyAttr, Tag
from ivory_hydra.sweeper.errors import SweepFailedError, SweepInputError
from ivory_hydra.sweeper.settings import SweeperSettings

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.sweeper.definition import SweepDefinition
    from ivory_hydra.sweeper.report import Report

log = logging.getLogger(__name__)


class IvorySweeperImpl:
    """Runs product, chain and optimize sweeps over Hydra overrides."""

    def __init__(self, settings: SweeperSettings | None = None) -> None:
        self.settings = settings or SweeperSettings()
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.raw_settings: dict[str, Any] = {}
        self.devices: tuple[int, ...] = ()  # what each job takes devices_per_job from
        self.started = time.time()  # this run of the command: its timeout counts from here

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        """Keep Hydra's context; the launcher is made per sweep, around the jobs' own trials."""
        from omegaconf import OmegaConf

        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        node = OmegaConf.select(config, "hydra.sweeper")
        raw: Any = OmegaConf.to_container(node, resolve=False) if node is not None else {}
        # as written: an interpolation such as ${oc.env:...} travels to the jobs unresolved
        self.raw_settings = {
            "storage": raw.get("storage"),
            "mlflow.tracking_uri": (raw.get("mlflow") or {}).get("tracking_uri"),
        }

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run the sweep; raise :class:`SweepFailedError` at the end if any job failed.

        SIGTERM and SIGHUP stop it as Ctrl-C does, from the first moment: what
        was started is failed in both stores, and the exit code names the
        signal (130, 143, 129).
        """
        from ivory_hydra.signals import exit_code, interrupts

        self.started = time.time()
        with interrupts():
            try:
                return self._sweep(arguments)
            except StorageUnavailableError as error:  # rerunning resumes: say so, once
                log.error(str(error))
                raise SystemExit(1) from None
            except KeyboardInterrupt as error:
                log.error(f"Stopped ({error or 'Ctrl-C'}) before any job ran; rerun to resume.")
                raise SystemExit(exit_code(error)) from None

    def _sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.hydra_context is not None
        from omegaconf import OmegaConf

        from ivory_hydra.stores.optuna_storage import check_storage, storage_url
        from ivory_hydra.stores.retry import set_storage_retry
        from ivory_hydra.sweeper.composition import compose_once
        from ivory_hydra.sweeper.definition import check_values, define, study_name_for
        from ivory_hydra.sweeper.devices import sweep_devices
        from ivory_hydra.sweeper.report import Report
        from ivory_hydra.sweeper.stored import stored_state, study_attrs

        # one loader for the checks and the launcher: the checks' compositions serve the jobs
        self.hydra_context = compose_once(self.hydra_context)
        # Everything that can be wrong with the input is found before any write.
        settings = self.settings
        _check(settings)
        self.devices = sweep_devices(settings, self.config)
        sweep = define(settings, self.config, self.hydra_context, arguments)
        job_name = str(OmegaConf.select(self.config, "hydra.job.name") or "app")
        cwd = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd") or "."))
        url = storage_url(settings.storage, cwd)
        tracking_uri = self._tracking_uri(cwd)
        _reachable("storage", url, check_storage)
        if tracking_uri is not None:
            from ivory_hydra.stores.mlflow_client import check_tracking_uri

            _reachable("mlflow.tracking_uri", tracking_uri, check_tracking_uri)
        set_storage_retry(sweep.definition.storage_retry)
        plan = sweep.definition.plan
        size = plan_size(plan.total, plan.repeat_count)

        def name_study(exists: Callable[[str], bool]) -> str:
            name = settings.study_name or study_name_for(job_name, sweep, exists)
            log.info(f"Ivory sweeper: {plan.mode} of {size} (study {name!r})")
            return name

        if settings.dry_run:  # what would run; the storage is only read, MLflow not opened
            from ivory_hydra.sweeper.dry_run import preview

            check_values(sweep, self.config, self.hydra_context)
            preview(sweep, url, name_study)
            return []
        study_name = name_study(lambda name: study_attrs(url, name) is not None)
        stored, synced = stored_state(url, study_name, sweep.identity)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        experiment = settings.mlflow.experiment_name or job_name
        finished = stored is not None and stored.get("finished") and stored["total"] == plan.total
        if not finished:  # a finished sweep runs no job: its values were checked as it ran
            check_values(sweep, self.config, self.hydra_context)
        if finished and (synced or tracking_uri is None):
            log.info("Every job of this sweep finished already: nothing to run")
            from ivory_hydra.stores.mlflow_mirror import MlflowMirror  # does not open MLflow

            hint = None if tracking_uri is None else MlflowMirror(tracking_uri, experiment)
            assert stored is not None
            Report(sweep, url, study_name, hint, sweep_dir).write(stored, None)
            return []
        if finished:
            log.info("Every job of this sweep finished already: bringing MLflow in line")

        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "multirun.yaml").write_text(redact_text(OmegaConf.to_yaml(self.config)))
        mirror = None
        if tracking_uri is not None:
            from ivory_hydra.stores.mlflow_mirror import MlflowMirror

            mirror = MlflowMirror(tracking_uri, experiment, sys.argv[0], settings.mlflow.timeout)
        engine = self._open_engine(url, study_name, job_name, experiment, sweep, mirror)
        report = Report(sweep, url, study_name, mirror, sweep_dir)
        try:
            log.info(f"Optuna storage used by this sweep: {redact_url(url)}")
            if mirror is not None:
                log.info(
                    f"MLflow tracking store used by this sweep: {redact_url(mirror.tracking_uri)}"
                )
            return self._run(engine, sweep, report, url, mirror)
        except SweepInputError:
            raise
        except BaseException as error:
            if engine.closed or isinstance(error, StorageUnavailableError):
                raise  # the storage is gone: the next run of the command settles it
            from ivory_hydra.engine.results import stop_status
            from ivory_hydra.signals import exit_code

            reason = f"the sweep stopped: {type(error).__name__}: {error}".rstrip(": ")
            engine.fail_in_flight(reason)
            engine.close(status=stop_status(error))
            if isinstance(error, KeyboardInterrupt):
                log.error(f"Stopped ({error or 'Ctrl-C'}): {reason}; rerun to resume.")
                raise SystemExit(exit_code(error)) from None
            raise

    def _run(
        self,
        engine: Engine,
        sweep: SweepDefinition,
        report: Report,
        url: str,
        mirror: MlflowMirror | None,
    ) -> list[Sequence[JobReturn]]:
        from ivory_hydra.sweeper.launch import run_batches

        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        ticket = sweep.definition.ticket(
            self._shipped("storage", url),
            None if mirror is None else self._shipped("mlflow.tracking_uri", mirror.tracking_uri),
            engine.study.name,
            engine.budgets.budget,
        )
        ticket = replace(
            ticket, devices=self.devices, devices_per_job=self.settings.devices_per_job
        )
        ticket = dataclasses.replace(ticket, mlflow_timeout=self.settings.mlflow.timeout)
        hydra = (self.hydra_context, self.task_function, self.config)
        try:
            returns = run_batches(engine, sweep, self.settings, ticket, hydra)
        except SweepFailedError as error:  # too many failures: the sweep stops
            report.finish(engine, stopped=str(error))  # raises it again
        report.finish(engine)
        return returns

    def _shipped(self, setting: str, resolved: str) -> str:
        """A store setting as jobs get it: an interpolation (``${oc.env:...}``) stays one."""
        raw = self.raw_settings.get(setting)
        return raw if isinstance(raw, str) and "${" in raw else resolved

    def _tracking_uri(self, cwd: Path) -> str | None:
        if not self.settings.mlflow.enabled:
            return None
        from ivory_hydra.stores.mlflow_client import resolve_tracking_uri

        return resolve_tracking_uri(self.settings.mlflow.tracking_uri, cwd)

    def _open_engine(
        self,
        url: str,
        study_name: str,
        job_name: str,
        experiment: str,
        sweep: SweepDefinition,
        mirror: MlflowMirror | None,
    ) -> Engine:
        import json

        from ivory_hydra.engine.opening import Opening, open_engine

        identity = sweep.identity
        opening = Opening(
            storage_url=url,
            study_name=study_name,
            experiment=experiment,
            kind=SWEEP,
            definition=sweep.definition,
            study_attrs={StudyAttr.DEFINITION: identity, StudyAttr.JOB_NAME: job_name},
            parent_tags={
                Tag.MODE: sweep.definition.plan.mode,
                Tag.DEFINITION: json.dumps(identity["params"]),
                Tag.COMMAND: redact_text(" ".join(sys.argv)),
                Tag.STORAGE: redact_url(url),
            },
            mirror=mirror,
            attrs_of=sweep.attrs_of,
            wrap=sweep.sampled,
            started=self.started,
        )
        try:
            return open_engine(opening)
        except SweepBusyError as error:
            raise SweepInputError(f"hydra.sweeper: {error}") from None


def _check(settings: SweeperSettings) -> None:
    """The settings only the sweeper has (the rest are the definition's)."""
    size = settings.batch_size
    if size is not None and size < 1:
        name = "n_jobs" if settings.max_batch_size is None else "max_batch_size"
        raise SweepInputError(f"hydra.sweeper.{name}: must be positive or null, not {size}")
    timeout = settings.mlflow.timeout
    if not 0 < timeout < float("inf"):
        raise SweepInputError(
            f"hydra.sweeper.mlflow.timeout: must be a positive number of seconds, not {timeout}"
        )
    rate = settings.max_failure_rate
    if rate is not None and not 0 <= rate <= 1:
        raise SweepInputError(
            f"hydra.sweeper.max_failure_rate: must be between 0 and 1, not {rate}"
        )


def _reachable(setting: str, url: str, check: Any) -> None:
    try:
        check(url)
    except StoreError as error:
        raise SweepInputError(f"hydra.sweeper.{setting}={redact_url(url)}: {error}") from None

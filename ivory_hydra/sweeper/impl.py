"""The logic of the ``ivory`` Hydra sweeper (the plugin module is a thin shell).

A sweep is a plan (product or chain) over params parsed from the overrides.
Input is checked, and both stores are checked reachable, before anything is
written. Then the engine hands out batches, Hydra's launcher runs them, and
each job records its own outcome; the sweeper reads them back and reports.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.display import plural
from ivory_hydra.core.plan import Plan, Point, check_mode
from ivory_hydra.core.redact import redact_text, redact_url
from ivory_hydra.errors import StoreError, SweepBusyError
from ivory_hydra.stores.format import SWEEP, StudyAttr, Tag, TrialAttr
from ivory_hydra.stores.liveness import GRACE_PERIOD, HEARTBEAT_INTERVAL
from ivory_hydra.sweeper.errors import (
    SweepDefinitionError,
    SweepFailedError,
    SweepInputError,
)
from ivory_hydra.sweeper.overrides import (
    SweepParam,
    SweepValue,
    merge_arguments,
    param_from_override,
    params_arguments,
)

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ivory_hydra.core.objectives import Objectives
    from ivory_hydra.core.outcomes import Outcome
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.job.hydra_task import TrialTask
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.trials import Assignment

log = logging.getLogger(__name__)

#: The settings that may hold a secret: shipped to jobs unresolved when they
#: are interpolations such as ``${oc.env:IVORY_STORAGE}``.
SECRET_SETTINGS = ("storage", "mlflow.tracking_uri")


def study_name_for(job_name: str, definition: Mapping[str, Any]) -> str:
    """The default study name: the job name and a digest of the sweep's definition.

    >>> study_name_for("train", {"mode": "product", "params": {"lr": ["0.1"]}})
    'train-ivory-251b06ee'
    """
    blob = json.dumps(definition, sort_keys=True, default=str).encode()
    return f"{job_name}-ivory-{hashlib.sha1(blob).hexdigest()[:8]}"


class IvorySweeperImpl:
    """Runs product and chain sweeps over Hydra overrides."""

    def __init__(
        self,
        mode: str = "product",
        use_best_param: bool = True,
        metric: str | None = None,
        direction: str = "minimize",
        params: dict[str, Any] | None = None,
        max_batch_size: int | None = None,
        storage: str | None = None,
        study_name: str | None = None,
        mlflow: Any = None,
        verbose: int = 1,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        grace_period: float = GRACE_PERIOD,
        sampler: Any = None,
        pruner: Any = None,
        n_trials: int | None = None,
        n_jobs: int | None = None,
        max_failure_rate: float | None = None,
        custom_search_space: str | None = None,
    ) -> None:
        from omegaconf import OmegaConf

        def plain(node: Any) -> Any:
            return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node

        self.mode = mode
        self.use_best_param = bool(use_best_param)
        self.metric = plain(metric)
        self.direction = plain(direction)
        self.params = dict(plain(params) or {})
        self.max_batch_size = max_batch_size if max_batch_size is not None else n_jobs
        self.n_jobs = n_jobs
        self.sampler = plain(sampler)
        self.pruner = plain(pruner)
        self.n_trials = n_trials
        self.max_failure_rate = max_failure_rate
        self.custom_search_space = custom_search_space
        self.storage = storage
        self.study_name = study_name
        mlflow = plain(mlflow) or {}
        self.mlflow_enabled = bool(mlflow.get("enabled", True))
        self.tracking_uri = mlflow.get("tracking_uri")
        self.experiment_name = mlflow.get("experiment_name")
        self.verbose = int(verbose)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None
        self.raw_settings: dict[str, Any] = {}
        self.by_name: dict[str, SweepParam] = {}

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
        raw = OmegaConf.to_container(node, resolve=False) if node is not None else {}
        self.raw_settings = {
            "storage": raw.get("storage"),  # type: ignore[union-attr]
            "mlflow.tracking_uri": (raw.get("mlflow") or {}).get("tracking_uri"),  # type: ignore[union-attr]
        }

    # ------------------------------------------------------------ definition

    def _check_settings(self) -> None:
        def bad(setting: str, message: str) -> SweepInputError:
            return SweepInputError(f"hydra.sweeper.{setting}: {message}")

        try:
            check_mode(self.mode)
        except ValueError as error:
            raise bad("mode", str(error)) from None
        from ivory_hydra.core.objectives import Objectives

        try:
            self.objectives = Objectives.of(self.direction, self.metric)
        except ValueError as error:
            setting, _, message = str(error).partition(": ")
            raise bad(setting, message) from None
        if not self.objectives.single and self.mode == "chain":
            raise bad(
                "direction",
                "chain mode fixes each param at its best value, so it takes "
                "one direction, not a list; use mode=optimize for several objectives",
            )
        self.direction = self.objectives.stored["direction"]
        self.metric = self.objectives.stored["metric"]
        if self.max_batch_size is not None and self.max_batch_size < 1:
            setting = "n_jobs" if self.max_batch_size == self.n_jobs else "max_batch_size"
            raise bad(setting, f"must be positive or null, not {self.max_batch_size}")
        trials = self.n_trials
        if self.mode == "optimize" and (not isinstance(trials, int) or trials < 1):
            raise bad("n_trials", f"optimize mode needs n_trials >= 1 (the total), not {trials}")
        if self.max_failure_rate is not None and not 0 <= self.max_failure_rate <= 1:
            raise bad("max_failure_rate", f"must be between 0 and 1, not {self.max_failure_rate}")
        for key in ("heartbeat_interval", "grace_period"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or value <= 0:
                raise SweepInputError(f"hydra.sweeper.{key} must be a positive number of seconds")
        if self.grace_period <= self.heartbeat_interval:
            raise SweepInputError(
                f"hydra.sweeper.grace_period ({self.grace_period:g} s) must be longer than "
                f"hydra.sweeper.heartbeat_interval ({self.heartbeat_interval:g} s)"
            )

    def parse(self, arguments: Sequence[str]) -> list[SweepParam]:
        """Turn config params and command-line overrides into sweep params."""
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from omegaconf import OmegaConf

        assert self.config is not None and self.hydra_context is not None
        # Unresolved: these raw strings may hold ${hydra.job.num} and the like.
        node = OmegaConf.select(self.config, "hydra.overrides.hydra")
        hydra_overrides = [] if node is None else OmegaConf.to_container(node, resolve=False)
        config_arguments = params_arguments(self.params, [str(o) for o in hydra_overrides])
        merged = merge_arguments(config_arguments, arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = []
        for argument in merged:
            try:
                [override] = parser.parse_overrides([argument])
            except Exception as error:  # noqa: BLE001 - Hydra's parse errors vary
                raise SweepDefinitionError(f"override {argument!r}: {error}") from None
            params.append(param_from_override(override, optimize=self.mode == "optimize"))
        return params

    def plan(self, params: Sequence[SweepParam]) -> Plan:
        """The product, chain or optimize plan over the params' values."""
        fixed = {p.name: p.values[0] for p in params if not p.swept}
        if self.mode == "optimize":
            return Plan("optimize", fixed, {}, trials=int(self.n_trials or 0))
        swept = {p.name: list(p.values) for p in params if p.swept}
        return Plan(self.mode, fixed, swept, self.use_best_param)

    def definition(self, params: Sequence[SweepParam]) -> dict[str, Any]:
        """What identifies the sweep: its settings and every param's value space."""
        return {
            "mode": self.mode,
            "use_best_param": self.use_best_param if self.mode == "chain" else None,
            "metric": self.metric,
            "direction": self.direction,  # n_trials, the sampler and the pruner may change
            "params": {p.key: p.describe() for p in params},
        }

    # ------------------------------------------------------------ sweep

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run the sweep; raise :class:`SweepFailedError` at the end if any job failed.

        SIGTERM and SIGHUP stop it as Ctrl-C does, from the first moment: what
        was started is failed in both stores, and the exit code names the
        signal (130, 143, 129).
        """
        from ivory_hydra.signals import exit_code, interrupts

        with interrupts():
            try:
                return self._sweep(arguments)
            except KeyboardInterrupt as error:
                log.error(f"Stopped ({error or 'Ctrl-C'}) before any job ran; rerun to resume.")
                raise SystemExit(exit_code(error)) from None

    def _sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        assert self.config is not None and self.hydra_context is not None
        from omegaconf import OmegaConf

        from ivory_hydra.stores.optuna_storage import check_storage, storage_url

        # Everything that can be wrong with the input is found before any write.
        self._check_settings()
        params = self.parse(arguments)
        self.by_name = {p.name: p for p in params}  # also for the report of a finished sweep
        plan = self.plan(params)
        from ivory_hydra.sweeper.validation import validate_sweep

        validate_sweep(self.hydra_context.config_loader, self.config, [p.checked() for p in params])
        optimizing = self._optimizing(params)  # a sampler and pruner that build, before any write

        job_name = str(OmegaConf.select(self.config, "hydra.job.name") or "app")
        definition = self.definition(params)
        cwd = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd") or "."))
        url = storage_url(self.storage, cwd)
        tracking_uri = self._tracking_uri(cwd)
        self._check("storage", url, check_storage)
        if tracking_uri is not None:
            from ivory_hydra.stores.mlflow_client import check_tracking_uri

            self._check("mlflow.tracking_uri", tracking_uri, check_tracking_uri)
        study_name = self.study_name or study_name_for(job_name, definition)
        stored, synced = self._stored_summary(url, study_name, definition)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(
            f"Ivory sweeper: {plan.mode} of {plural(plan.total, 'job')} (study {study_name!r})"
        )
        finished = stored is not None and stored.get("finished") and stored["total"] == plan.total
        if finished and (synced or tracking_uri is None):
            log.info("Every job of this sweep finished already: nothing to run")
            from ivory_hydra.stores.mlflow_mirror import MlflowMirror  # does not open MLflow

            hint = None if tracking_uri is None else MlflowMirror(tracking_uri, job_name)
            self._report(stored, url, study_name, hint, None, sweep_dir)
            return []

        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "multirun.yaml").write_text(redact_text(OmegaConf.to_yaml(self.config)))
        mirror = None
        if tracking_uri is not None:
            from ivory_hydra.stores.mlflow_mirror import MlflowMirror

            mirror = MlflowMirror(tracking_uri, self.experiment_name or job_name, sys.argv[0])
        engine = self._open_engine(
            url, study_name, job_name, definition, params, plan, mirror, optimizing
        )
        try:
            log.info(f"Optuna storage used by this sweep: {redact_url(url)}")
            if mirror is not None:
                log.info(
                    f"MLflow tracking store used by this sweep: {redact_url(mirror.tracking_uri)}"
                )
            return self._run(engine, plan, url, mirror, sweep_dir)
        except SweepInputError:
            raise
        except BaseException as error:
            if engine.closed:
                raise
            from ivory_hydra.signals import exit_code

            reason = f"the sweep stopped: {type(error).__name__}: {error}".rstrip(": ")
            interrupted = isinstance(error, KeyboardInterrupt)
            engine.fail_in_flight(reason)
            engine.close(status="KILLED" if interrupted else "FAILED")
            if interrupted:
                log.error(f"Stopped ({error or 'Ctrl-C'}): {reason}; rerun to resume.")
                raise SystemExit(exit_code(error)) from None
            raise

    def _tracking_uri(self, cwd: Path) -> str | None:
        if not self.mlflow_enabled:
            return None
        from ivory_hydra.stores.mlflow_client import resolve_tracking_uri

        return resolve_tracking_uri(self.tracking_uri, cwd)

    @staticmethod
    def _check(setting: str, url: str, check: Any) -> None:
        try:
            check(url)
        except StoreError as error:
            raise SweepInputError(f"hydra.sweeper.{setting}={redact_url(url)}: {error}") from None

    @staticmethod
    def _stored_summary(
        url: str, study_name: str, definition: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, bool]:
        """The summary of this sweep's last run, if its study exists, and whether
        MLflow was brought in line with it.

        A study holds one sweep: finding another definition in it is an error.
        A study can exist only where the storage exists, so a fresh folder is
        not touched.
        """
        from ivory_hydra.stores.optuna_storage import is_journal, open_storage
        from ivory_hydra.stores.sqlite_files import sqlite_file
        from ivory_hydra.stores.study import Study, check_format

        local = Path(url) if is_journal(url) else sqlite_file(url)
        if local is not None and not local.exists():
            return None, False
        try:
            study = Study.find(open_storage(url), study_name)
            attrs = {} if study is None else study.user_attrs
            check_format(study_name, attrs)
        except StoreError as error:
            raise SweepInputError(f"hydra.sweeper.storage={redact_url(url)}: {error}") from None
        if study is None:
            return None, False
        stored = attrs.get(StudyAttr.DEFINITION)
        wanted = json.loads(json.dumps(definition, default=str))
        if stored is not None and stored != wanted:
            changed = sorted(
                key
                for key in {**stored, **wanted}
                if key != "params" and stored.get(key) != wanted.get(key)
            )
            old, new = stored.get("params", {}), wanted.get("params", {})
            changed += [f"param {k}" for k in sorted({**old, **new}) if old.get(k) != new.get(k)]
            raise SweepInputError(
                f"hydra.sweeper.study_name={study_name}: this study holds another sweep "
                f"(it differs in {', '.join(changed)}). Run that sweep's own command to "
                "resume it, or choose a new study_name."
            )
        summary = attrs.get(StudyAttr.SUMMARY)
        synced = attrs.get(StudyAttr.MIRROR_SYNCED) is True
        return (dict(summary) if isinstance(summary, Mapping) else None), synced

    def _open_engine(
        self,
        url: str,
        study_name: str,
        job_name: str,
        definition: dict[str, Any],
        params: Sequence[SweepParam],
        plan: Plan,
        mirror: MlflowMirror | None,
        optimizing: Optimizing | None,
    ) -> Engine:
        from ivory_hydra.engine.opening import Opening, open_engine
        from ivory_hydra.engine.state import Settings
        from ivory_hydra.stores.distributions import distributions_for, fits

        self.by_name = {p.name: p for p in params}
        values = {p.name: [v.value for v in p.values] for p in params if p.space is None}
        logs = {p.name for p in params if p.log}
        defaults = {
            name: default
            for name, default in self.defaults(plan).items()
            if fits(values[name], default, name in logs)
        }
        distributions = distributions_for(
            {k: [*v, defaults[k]] if k in defaults else v for k, v in values.items()}, logs
        )
        if optimizing is not None:
            distributions.update(optimizing.space)

        opening = Opening(
            storage_url=url,
            study_name=study_name,
            experiment=self.experiment_name or job_name,
            kind=SWEEP,
            plan=plan,
            distributions=distributions,
            defaults=defaults,
            settings=Settings(
                objectives=self.objectives,
                use_best_param=self.use_best_param,
                heartbeat_interval=self.heartbeat_interval,
                grace_period=self.grace_period,
            ),
            study_attrs={StudyAttr.DEFINITION: definition, StudyAttr.JOB_NAME: job_name},
            parent_tags={
                Tag.MODE: plan.mode,
                Tag.DEFINITION: json.dumps(definition["params"]),
                Tag.COMMAND: redact_text(" ".join(sys.argv)),
                Tag.STORAGE: redact_url(url),
            },
            mirror=mirror,
            value_of=lambda value: value.value,
            attrs_of=lambda point: {TrialAttr.OVERRIDES: " ".join(self.overrides(point))},
            sampling=None if optimizing is None else optimizing.sampling,
            wrap=self._sampled,
        )
        try:
            return open_engine(opening)
        except SweepBusyError as error:
            raise SweepInputError(f"hydra.sweeper: {error}") from None

    def defaults(self, plan: Plan) -> dict[str, Any]:
        """The config value of each swept param, for jobs that run before its chain step.

        A config group's default is its chosen option; an addition (``+key``)
        has none. Hydra applied the range strings to the primary config as plain
        strings, so the defaults come from one composition without the swept keys.
        """
        from omegaconf import OmegaConf

        assert self.config is not None and self.hydra_context is not None
        if plan.mode != "chain":
            return {}
        swept = set(plan.swept)
        task = OmegaConf.to_container(self.config.hydra.overrides.task, resolve=False)
        kept = [o for o in task if str(o).split("=", 1)[0].lstrip("+~") not in swept]
        try:
            config = self.hydra_context.config_loader.load_sweep_config(
                master_config=self.config, sweep_overrides=kept
            )
        except Exception:  # noqa: BLE001 - validation already passed; defaults are extras
            return {}
        choices = OmegaConf.select(config, "hydra.runtime.choices") or {}
        found: dict[str, Any] = {}
        for name in plan.swept:
            if name in choices:
                found[name] = choices[name]
                continue
            try:
                node = OmegaConf.select(config, name, throw_on_missing=True)
            except Exception:  # noqa: BLE001 - missing, or an interpolation that fails
                continue
            if node is not None and not OmegaConf.is_config(node):
                found[name] = node
        return found

    def overrides(self, point: Point) -> list[str]:
        """The job overrides of a point, in argument order.

        Params a custom search space added (``+w``) come last.
        """
        known = [
            self.by_name[name].override(point.params[name])
            for name in self.by_name
            if name in point.params
        ]
        extra = [f"{k}={v.text}" for k, v in point.params.items() if k not in self.by_name]
        return known + extra

    def _sampled(self, name: str, value: Any) -> SweepValue:
        param = self.by_name.get(name)
        return param.sampled(value) if param is not None else SweepParam(name, ()).sampled(value)

    def _optimizing(self, params: Sequence[SweepParam]) -> Optimizing | None:
        """Optimize mode: the search space, and a sampler and pruner checked to build."""
        if self.mode != "optimize":
            if self.pruner is not None:
                _build("pruner", self.pruner)
            return None
        from optuna.distributions import CategoricalDistribution

        from ivory_hydra.stores.distributions import interval_distribution, optuna_value

        space = {
            p.name: interval_distribution(p.space)
            if p.space is not None
            else CategoricalDistribution(
                list(dict.fromkeys(optuna_value(v.value) for v in p.values))
            )
            for p in params
            if p.swept
        }
        if not space and not self.custom_search_space:
            raise SweepInputError(
                "hydra.sweeper.params: optimize mode needs a search space: a range "
                "(lr=1e-5_1e-1.log), interval(), range(), choice() or a list of values, "
                "or a custom_search_space"
            )
        extend = None
        if self.custom_search_space:
            extend = self._extender(self.custom_search_space)
        optimizing = Optimizing(self, space, extend)
        optimizing.sampler(0)  # fails here, named, if it cannot be built
        if self.pruner is not None:
            _build("pruner", self.pruner)
        return optimizing

    def _extender(self, path: str) -> Any:
        from hydra.utils import get_method

        try:
            function = get_method(path)
        except Exception as error:  # noqa: BLE001 - import errors of user code
            raise SweepInputError(
                f"hydra.sweeper.custom_search_space={path}: cannot import it: {error}"
            ) from None
        config = self.config
        return lambda trial: function(config, trial)

    def _ticket(self, url: str, study_name: str, mirror: MlflowMirror | None) -> Any:
        from ivory_hydra.job.ticket import Ticket

        def shipped(setting: str, resolved: str | None) -> str | None:
            raw = self.raw_settings.get(setting)
            return raw if isinstance(raw, str) and "${" in raw else resolved

        return Ticket(
            storage=str(shipped("storage", url)),
            tracking_uri=None
            if mirror is None
            else shipped("mlflow.tracking_uri", mirror.tracking_uri),
            objectives=self.objectives,
            study_name=study_name,
            pruner=self.pruner,
            heartbeat_interval=self.heartbeat_interval,
        )

    def _run(
        self,
        engine: Engine,
        plan: Plan,
        url: str,
        mirror: MlflowMirror | None,
        sweep_dir: Path,
    ) -> list[Sequence[JobReturn]]:
        from hydra.core.plugins import Plugins

        from ivory_hydra.job.hydra_task import TrialTask
        from ivory_hydra.progress import ProgressBar
        from ivory_hydra.sweeper.returns import kept_on_disk

        assert self.config is not None and self.hydra_context is not None
        done = engine.done
        if done:
            log.info(f"Resuming: {plural(done, 'finished job')} not run again")
        bar = ProgressBar(plan.total, self.verbose, done=done)
        engine.show = bar.write
        task = TrialTask(
            self.task_function, self._ticket(url, engine.study.name, mirror), on_end=bar.hook()
        )
        from ivory_hydra.sweeper.composition import compose_once

        # Jobs that differ only in values are served from one composition of the
        # config files (the launcher composes every job otherwise).
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=compose_once(self.hydra_context), task_function=task, config=self.config
        )
        if type(launcher).__name__ != "BasicLauncher":  # its workers must not outlive us
            from ivory_hydra.engine.orphans import watch

            watch()
        returns: list[Sequence[JobReturn]] = []
        try:
            probing = self.metric is not None
            size = self.max_batch_size or self._default_batch(engine)
            for batch in engine.walk(size, first_alone=probing):
                launched = self._launch(launcher, task, batch)
                fallbacks = _fallbacks(batch, launched, self.objectives)
                results = engine.collect(batch, fallbacks)
                returns.append([kept_on_disk(r) for r in launched])
                bar.advance_to(done + engine.issued)
                if probing:
                    probing = False
                    self._check_first(engine, batch, results)
                self._check_failure_rate(results)
        except SweepFailedError as error:  # too many failures: the sweep stops
            bar.close()
            self._finish(engine, url, mirror, sweep_dir, stopped=str(error))
        finally:
            bar.close()
        self._finish(engine, url, mirror, sweep_dir)
        return returns

    def _default_batch(self, engine: Engine) -> int | None:
        """Without max_batch_size: one batch (up to the engine's limit), except that
        optimize mode asks one trial at a time, so that its sampler learns from every
        result, and a worker among several takes as many jobs as its launcher runs at once.
        """
        from omegaconf import OmegaConf

        if self.mode != "optimize" and not engine.coordination.shared:
            return None
        parallel = OmegaConf.select(self.config, "hydra.launcher.n_jobs", default=None)
        return parallel if isinstance(parallel, int) and parallel > 0 else 1

    def _launch(self, launcher: Any, task: TrialTask, batch: list[Assignment]) -> list[JobReturn]:
        task.assignments = {a.number: a for a in batch}
        overrides = [self.overrides(a.point) for a in batch]
        results: list[JobReturn] = []
        for start, end in _contiguous([a.number for a in batch]):
            results.extend(
                launcher.launch(overrides[start:end], initial_job_idx=batch[start].number)
            )
        return results

    def _check_failure_rate(self, results: Sequence[Any]) -> None:
        """Stop when a batch failed more often than ``max_failure_rate`` allows."""
        if self.max_failure_rate is None or not results:
            return
        failed = [r for r in results if r.outcome.failed]
        if len(failed) / len(results) > self.max_failure_rate:
            raise SweepFailedError(
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate:g}: {len(failed)} of "
                f"{len(results)} jobs of a batch failed ({failed[0].run_name}: "
                f"{failed[0].outcome.reason}); the sweep stops"
            )

    def _check_first(self, engine: Engine, batch: list[Assignment], results: Sequence[Any]) -> None:
        """A metric missing from the first job's mapping is bad input: undo the sweep."""
        first = results[0] if results else None
        if first is None or not first.outcome.missing_metric:
            return
        engine.undo(batch)
        raise SweepDefinitionError(f"hydra.sweeper.metric={self.metric}: {first.outcome.reason}")

    def _finish(
        self,
        engine: Engine,
        url: str,
        mirror: MlflowMirror | None,
        sweep_dir: Path,
        stopped: str | None = None,
    ) -> None:
        total = engine.plan.total
        if engine.coordination.shared:
            log.info(f"This worker ran {plural(engine.issued, 'job')} of {plural(total, 'job')}")
        if not engine.leave():
            mine = [f for f in engine.summary().failed if f.number in engine.mine]
            engine.close()
            log.info("Other workers still run this sweep; the last of them writes its summary")
            if stopped:
                raise SweepFailedError(stopped)
            if mine:
                raise SweepFailedError(f"{plural(len(mine), 'job')} of this worker failed")
            return
        summary = engine.summary()
        path = self._report(
            summary.as_dict(), url, engine.study.name, mirror, engine.parent_run_id, sweep_dir
        )
        artifacts = [path, *self._chain_plot(engine, sweep_dir)]
        engine.close(summary, artifacts=artifacts)
        if stopped:
            raise SweepFailedError(stopped)
        if summary.failed:
            names = ", ".join(
                f"{f.run_name} (job {f.number}: {f.attrs.get('overrides', '')})"
                for f in summary.failed
            )
            raise SweepFailedError(f"{len(summary.failed)} of {summary.total} jobs failed: {names}")

    def _chain_plot(self, engine: Engine, sweep_dir: Path) -> list[Path]:
        """A chain sweep's figure, ``chain.png`` in the sweep folder (none without matplotlib)."""
        if self.mode != "chain":
            return []
        from ivory_hydra.sweeper.chain_plot import plot_chain

        try:
            path = plot_chain(
                engine.chain_steps(),
                sweep_dir / "chain.png",
                metric=self.metric if isinstance(self.metric, str) else "score",
                direction=self.objectives.direction,
                log_params={p.name for p in self.by_name.values() if p.log},
            )
        except Exception as error:  # noqa: BLE001 - a figure must not fail a finished sweep
            log.warning(f"No chain plot: {type(error).__name__}: {error}")
            return []
        if path is not None:
            log.info(f"Chain plot: {path}")
        return [path] if path is not None else []

    def _report(
        self,
        result: dict[str, Any],
        url: str,
        study_name: str,
        mirror: MlflowMirror | None,
        parent_run_id: str | None,
        sweep_dir: Path,
    ) -> Path:
        """Write ``results.yaml`` and log the sweep's story and where to look."""
        from ivory_hydra.core.display import summary_lines
        from ivory_hydra.stores.mlflow_ui import where_in_mlflow
        from ivory_hydra.stores.optuna_storage import dashboard_hint
        from ivory_hydra.sweeper.results import write_results

        link, mlflow_lines = where_in_mlflow(
            mirror,
            parent_run_id,
            result,
            self.metric,
            list(self.objectives.directions),
            sweep_dir / "results.yaml",
        )
        results = {
            **result,
            "study_name": study_name,
            "storage": redact_url(url),
            "mode": self.mode,
            "direction": self.direction,
            "metric": self.metric,
            "mlflow_runs_url": link,  # mlflow_ui.RESULTS_KEY
        }
        path = write_results(sweep_dir / "results.yaml", results)
        if self.mode == "optimize":  # what scripts written for Hydra's Optuna sweeper read
            from ivory_hydra.sweeper.optuna_sweeper import write_optimization_results

            write_optimization_results(
                sweep_dir, result, self.objectives.count, self.by_name.values()
            )
        lines = summary_lines(result, self.metric)
        lines += [f"Results: {path}", f"Optuna:  {dashboard_hint(url)}", *mlflow_lines]
        log.info("\n".join(lines))
        return path


def _build(setting: str, node: Mapping[str, Any], **kwargs: Any) -> Any:
    """Instantiate a sampler or pruner node (``_target_`` and its arguments)."""
    from hydra.utils import instantiate

    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not target:
        raise SweepInputError(f"hydra.sweeper.{setting}: give a node with a _target_, not {node!r}")
    try:
        return instantiate(dict(node), **kwargs)
    except Exception as error:  # noqa: BLE001 - imports and constructors fail in many ways
        cause = error.__cause__ or error
        raise SweepInputError(
            f"hydra.sweeper.{setting}: cannot make {target}: {type(cause).__name__}: {cause}"
        ) from None


class Optimizing:
    """Optimize mode's pieces: the search space, the sampler and what extends the space."""

    def __init__(self, sweeper: IvorySweeperImpl, space: dict[str, Any], extend: Any) -> None:
        self.node = dict(sweeper.sampler or {"_target_": "optuna.samplers.TPESampler"})
        self.space = space
        self.extend = extend

    def sampler(self, done: int) -> Any:
        """The sampler; on a resumed sweep a seed moves on by the trials already made.

        Otherwise a seeded sampler would draw its first points again.
        """
        node = dict(self.node)
        if node.get("seed") is not None and done:
            node["seed"] = int(node["seed"]) + done
        if str(node["_target_"]).endswith("GridSampler"):
            return _build("sampler", node, search_space=self._grid())
        return _build("sampler", node)

    def _grid(self) -> dict[str, list[Any]]:
        from optuna.distributions import CategoricalDistribution

        grid = {}
        for name, distribution in self.space.items():
            if isinstance(distribution, CategoricalDistribution):
                grid[name] = list(distribution.choices)
            elif distribution.step is not None and not distribution.log:
                count = int(round((distribution.high - distribution.low) / distribution.step)) + 1
                grid[name] = [distribution.low + i * distribution.step for i in range(count)]
            else:
                raise SweepInputError(
                    f"hydra.sweeper.sampler: the grid sampler needs listed values; param "
                    f"{name!r} is continuous (give it a step or :num)"
                )
        return grid

    def sampling(self, study: Any) -> Any:
        """The engine's sampling, once the study is open."""
        from ivory_hydra.stores.sampling import Sampling

        done = len(study.trials())
        return Sampling(study.storage, study.name, self.sampler(done), self.space, self.extend)


def _contiguous(numbers: Sequence[int]) -> list[tuple[int, int]]:
    """Spans of positions whose numbers follow each other (one launch each).

    >>> _contiguous([4, 5, 6, 9, 10])
    [(0, 3), (3, 5)]
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            spans.append((start, i))
            start = i
    return spans


def _fallbacks(
    batch: Sequence[Assignment], returns: Sequence[JobReturn], objectives: Objectives
) -> dict[int, Outcome]:
    """Outcomes from the launcher's returns, for jobs that could not reach the storage."""
    from hydra.core.utils import JobStatus

    from ivory_hydra._compat import job_exception
    from ivory_hydra.core.outcomes import outcome_from_error, score_or_fail

    outcomes = {}
    for assignment, result in zip(batch, returns, strict=False):
        if result.status == JobStatus.FAILED:
            outcomes[assignment.number] = outcome_from_error(job_exception(result))
        elif result.status == JobStatus.COMPLETED:
            outcomes[assignment.number] = score_or_fail(
                result.return_value, objectives.metric_arg, None, objectives.count
            )
    return outcomes

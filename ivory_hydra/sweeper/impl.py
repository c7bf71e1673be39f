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
from ivory_hydra.core.plan import Plan, Point, check_direction, check_mode
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
    merge_arguments,
    param_from_override,
    params_arguments,
)

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ivory_hydra.core.outcomes import Outcome
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.job.hydra_task import TrialTask
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.stores.trials import Claim

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
    ) -> None:
        from omegaconf import DictConfig, OmegaConf

        self.mode = mode
        self.use_best_param = bool(use_best_param)
        self.metric = metric
        self.direction = direction
        if isinstance(params, DictConfig):
            params = OmegaConf.to_container(params, resolve=True)  # type: ignore[assignment]
        self.params = dict(params or {})
        self.max_batch_size = max_batch_size
        self.storage = storage
        self.study_name = study_name
        if isinstance(mlflow, DictConfig):
            mlflow = OmegaConf.to_container(mlflow, resolve=True)
        mlflow = mlflow or {}
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
        for key, check in (("mode", check_mode), ("direction", check_direction)):
            try:
                check(getattr(self, key))
            except ValueError as error:
                raise SweepInputError(f"hydra.sweeper.{key}: {error}") from None
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise SweepInputError(
                f"hydra.sweeper.max_batch_size must be positive or null, not {self.max_batch_size}"
            )
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
            params.append(param_from_override(override))
        return params

    def plan(self, params: Sequence[SweepParam]) -> Plan:
        """The product or chain plan over the params' values."""
        fixed = {p.name: p.values[0] for p in params if len(p.values) == 1}
        swept = {p.name: list(p.values) for p in params if len(p.values) > 1}
        return Plan(self.mode, fixed, swept, self.use_best_param)

    def definition(self, params: Sequence[SweepParam]) -> dict[str, Any]:
        """What identifies the sweep: its settings and every param's value space."""
        return {
            "mode": self.mode,
            "use_best_param": self.use_best_param if self.mode == "chain" else None,
            "metric": self.metric,
            "direction": self.direction,
            "params": {p.key: [v.text for v in p.values] for p in params},
        }

    # ------------------------------------------------------------ sweep

    def sweep(self, arguments: list[str]) -> list[Sequence[JobReturn]]:
        """Run the sweep; raise :class:`SweepFailedError` at the end if any job failed."""
        assert self.config is not None and self.hydra_context is not None
        from omegaconf import OmegaConf

        from ivory_hydra.stores.optuna_storage import check_storage, storage_url

        # Everything that can be wrong with the input is found before any write.
        self._check_settings()
        params = self.parse(arguments)
        plan = self.plan(params)
        from ivory_hydra.sweeper.validation import validate_sweep

        validate_sweep(self.hydra_context.config_loader, self.config, params)

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
        stored = self._stored_summary(url, study_name, definition)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        log.info(
            f"Ivory sweeper: {plan.mode} of {plural(plan.total, 'job')} (study {study_name!r})"
        )
        if stored is not None and stored.get("finished"):
            log.info("Every job of this sweep finished already: nothing to run")
            self._report(stored, url, study_name, tracking_uri, sweep_dir)
            return []

        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / "multirun.yaml").write_text(redact_text(OmegaConf.to_yaml(self.config)))
        mirror = None
        if tracking_uri is not None:
            from ivory_hydra.stores.mlflow_mirror import MlflowMirror

            mirror = MlflowMirror(tracking_uri, self.experiment_name or job_name, sys.argv[0])
        engine = self._open_engine(url, study_name, job_name, definition, params, plan, mirror)
        log.info(f"Optuna storage used by this sweep: {redact_url(url)}")
        if mirror is not None:
            log.info(f"MLflow tracking store used by this sweep: {redact_url(mirror.tracking_uri)}")
        return self._run(engine, plan, url, mirror, sweep_dir)

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
    ) -> dict[str, Any] | None:
        """The summary of this sweep's last run, if its study exists.

        A study holds one sweep: finding another definition in it is an error.
        A study can exist only where the storage exists, so a fresh folder is
        not touched.
        """
        from ivory_hydra.stores.optuna_storage import is_journal, open_storage
        from ivory_hydra.stores.sqlite_files import sqlite_file
        from ivory_hydra.stores.study import Study

        local = Path(url) if is_journal(url) else sqlite_file(url)
        if local is not None and not local.exists():
            return None
        try:
            study = Study.find(open_storage(url), study_name)
        except StoreError as error:
            raise SweepInputError(f"hydra.sweeper.storage={redact_url(url)}: {error}") from None
        if study is None:
            return None
        attrs = study.user_attrs
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
        return dict(summary) if isinstance(summary, Mapping) else None

    def _open_engine(
        self,
        url: str,
        study_name: str,
        job_name: str,
        definition: dict[str, Any],
        params: Sequence[SweepParam],
        plan: Plan,
        mirror: MlflowMirror | None,
    ) -> Engine:
        from ivory_hydra.engine.engine import Opening, Settings, open_engine
        from ivory_hydra.stores.distributions import distributions_for, fits

        self.by_name = {p.name: p for p in params}
        values = {p.name: [v.value for v in p.values] for p in params}
        logs = {p.name for p in params if p.log}
        defaults = {
            name: default
            for name, default in self.defaults(plan).items()
            if fits(values[name], default, name in logs)
        }

        opening = Opening(
            storage_url=url,
            study_name=study_name,
            experiment=self.experiment_name or job_name,
            kind=SWEEP,
            plan=plan,
            distributions=distributions_for(
                {k: [*v, defaults[k]] if k in defaults else v for k, v in values.items()}, logs
            ),
            defaults=defaults,
            settings=Settings(
                metric=self.metric,
                direction=self.direction,
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
        """The job overrides of a point, in argument order."""
        return [
            self.by_name[name].override(point.params[name])
            for name in self.by_name
            if name in point.params
        ]

    def _ticket(self, url: str, mirror: MlflowMirror | None) -> Any:
        from ivory_hydra.job.ticket import Ticket

        def shipped(setting: str, resolved: str | None) -> str | None:
            raw = self.raw_settings.get(setting)
            return raw if isinstance(raw, str) and "${" in raw else resolved

        return Ticket(
            storage=str(shipped("storage", url)),
            tracking_uri=None
            if mirror is None
            else shipped("mlflow.tracking_uri", mirror.tracking_uri),
            metric=self.metric,
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

        from ivory_hydra.engine.signals import exit_code, interrupts
        from ivory_hydra.job.hydra_task import TrialTask
        from ivory_hydra.progress import ProgressBar

        assert self.config is not None and self.hydra_context is not None
        done = engine.done
        if done:
            log.info(f"Resuming: {plural(done, 'finished job')} not run again")
        bar = ProgressBar(plan.total, self.verbose, done=done)
        engine.show = bar.write
        task = TrialTask(self.task_function, self._ticket(url, mirror), on_end=bar.hook())
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=self.hydra_context, task_function=task, config=self.config
        )
        returns: list[Sequence[JobReturn]] = []
        claims: list[Claim] = []
        try:
            with interrupts():
                try:
                    probing = self.metric is not None
                    for claims in engine.walk(self.max_batch_size, first_alone=probing):
                        returns.append(self._launch(launcher, task, claims))
                        results = engine.collect(
                            claims, _fallbacks(claims, returns[-1], self.metric)
                        )
                        bar.advance_to(done + engine.claimed)
                        if probing:
                            probing = False
                            self._check_first(engine, claims, results)
                except SweepInputError:
                    raise
                except BaseException as error:
                    reason = f"the sweep stopped: {type(error).__name__}: {error}".rstrip(": ")
                    interrupted = isinstance(error, KeyboardInterrupt)
                    engine.abandon(claims, reason)
                    engine.close(engine.summary(), status="KILLED" if interrupted else "FAILED")
                    if interrupted:
                        log.error(f"Stopped ({error or 'Ctrl-C'}): {reason}; rerun to resume.")
                        raise SystemExit(exit_code(error)) from None
                    raise
        finally:
            bar.close()
        self._finish(engine, url, mirror, sweep_dir)
        return returns

    def _launch(self, launcher: Any, task: TrialTask, claims: list[Claim]) -> list[JobReturn]:
        task.claims = {c.number: c for c in claims}
        overrides = [self.overrides(c.point) for c in claims]
        results: list[JobReturn] = []
        for start, end in _contiguous([c.number for c in claims]):
            results.extend(
                launcher.launch(overrides[start:end], initial_job_idx=claims[start].number)
            )
        return results

    def _check_first(self, engine: Engine, claims: list[Claim], results: Sequence[Any]) -> None:
        """A metric missing from the first job's mapping is bad input: undo the sweep."""
        first = results[0] if results else None
        if first is None or first.outcome.error != "MissingMetricError":
            return
        engine.discard(claims, engine.study.created)
        raise SweepDefinitionError(f"hydra.sweeper.metric={self.metric}: {first.outcome.reason}")

    def _finish(
        self, engine: Engine, url: str, mirror: MlflowMirror | None, sweep_dir: Path
    ) -> None:
        summary = engine.summary()
        tracking_uri = mirror.tracking_uri if mirror else None
        path = self._report(summary.as_dict(), url, engine.study.name, tracking_uri, sweep_dir)
        engine.close(summary, status="FAILED" if summary.failed else "FINISHED", artifacts=[path])
        if summary.failed:
            names = ", ".join(
                f"{f.run_name} (job {f.number}: {f.attrs.get('overrides', '')})"
                for f in summary.failed
            )
            raise SweepFailedError(f"{len(summary.failed)} of {summary.total} jobs failed: {names}")

    def _report(
        self,
        result: dict[str, Any],
        url: str,
        study_name: str,
        tracking_uri: str | None,
        sweep_dir: Path,
    ) -> Path:
        """Write ``results.yaml`` and log the sweep's story and where to look."""
        from ivory_hydra.core.display import summary_lines
        from ivory_hydra.stores.optuna_storage import dashboard_command
        from ivory_hydra.sweeper.results import write_results

        results = {
            **result,
            "study_name": study_name,
            "storage": redact_url(url),
            "mode": self.mode,
            "direction": self.direction,
            "metric": self.metric,
        }
        path = write_results(sweep_dir / "results.yaml", results)
        lines = summary_lines(result, self.metric)
        lines += [f"Results: {path}", f"Optuna:  {dashboard_command(url)}"]
        if tracking_uri is not None:
            from ivory_hydra.stores.mlflow_mirror import MlflowMirror

            lines.append(f"MLflow:  {MlflowMirror(tracking_uri, '').ui_command()}")
        log.info("\n".join(lines))
        return path


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
    claims: Sequence[Claim], returns: Sequence[JobReturn], metric: str | None
) -> dict[int, Outcome]:
    """Outcomes from the launcher's returns, for jobs that could not reach the storage."""
    from hydra.core.utils import JobStatus

    from ivory_hydra._compat import job_exception
    from ivory_hydra.core.outcomes import outcome_from_error, score_or_fail

    outcomes = {}
    for claim, result in zip(claims, returns, strict=False):
        if result.status == JobStatus.FAILED:
            outcomes[claim.number] = outcome_from_error(job_exception(result))
        elif result.status == JobStatus.COMPLETED:
            outcomes[claim.number] = score_or_fail(result.return_value, metric)
    return outcomes

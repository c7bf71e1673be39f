"""The logic of the ``ivory`` Hydra sweeper (the plugin module is a thin shell).

A sweep is a plan (product or chain) over params parsed from the overrides.
Every job is numbered, recorded and mirrored by a :class:`Recorder`; the
Optuna study is the source of truth for scores, chain decisions and resume.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.errors import SweepDefinitionError, SweepFailedError, SweepInputError
from ivory_hydra.overrides import (
    SweepParam,
    merge_arguments,
    param_from_override,
    params_arguments,
)
from ivory_hydra.plan import Plan, check_direction, check_mode
from ivory_hydra.redact import redact_text, redact_url
from ivory_hydra.store import dashboard_command, storage_url

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ivory_hydra.mirror import MlflowMirror
    from ivory_hydra.recorder import Recorder
    from ivory_hydra.runner import SweepRunner

log = logging.getLogger(__name__)


def study_name_for(job_name: str, definition: dict[str, Any]) -> str:
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
    ) -> None:
        self.mode = mode
        self.use_best_param = bool(use_best_param)
        self.metric = metric
        self.direction = direction
        self.params = _plain_params(params)
        self.max_batch_size = max_batch_size
        self.storage = storage
        self.study_name = study_name
        from omegaconf import DictConfig, OmegaConf

        if isinstance(mlflow, DictConfig):
            mlflow = OmegaConf.to_container(mlflow, resolve=True)
        mlflow = mlflow or {}
        self.mlflow_enabled = bool(mlflow.get("enabled", True))
        self.tracking_uri = mlflow.get("tracking_uri")
        self.experiment_name = mlflow.get("experiment_name")
        self.verbose = int(verbose)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        """Keep Hydra's context and instantiate the launcher."""
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

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
        assert self.config is not None and self.launcher is not None
        assert self.hydra_context is not None
        from omegaconf import OmegaConf

        # Everything that can be wrong with the input is found before any write.
        self._check_settings()
        params = self.parse(arguments)
        plan = self.plan(params)
        from ivory_hydra.validation import validate_sweep

        validate_sweep(self.hydra_context.config_loader, self.config, params)

        job_name = str(OmegaConf.select(self.config, "hydra.job.name") or "app")
        definition = self.definition(params)
        cwd = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd") or "."))
        url = storage_url(self.storage, cwd)
        experiment = self.experiment_name or job_name
        self._open_storage(url)
        study_name = self.study_name or study_name_for(job_name, definition)
        self._check_same_sweep(url, study_name, definition)
        mirror = self._mirror(experiment, cwd)
        recorder = self._recorder(
            url, experiment, study_name, job_name, definition, params, plan, mirror
        )

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self._announce(recorder, url, mirror, plan)

        from ivory_hydra.runner import RunSettings, SweepRunner

        runner = SweepRunner(
            launcher=self.launcher,
            hydra_context=self.hydra_context,
            recorder=recorder,
            mirror=mirror,
            params=params,
            plan=plan,
            settings=RunSettings(self.metric, self.direction, self.max_batch_size, self.verbose),
        )
        try:
            returns = runner.run()
        except SweepInputError:
            # Found on the first job (a metric missing from its mapping): as for
            # any bad input, nothing of this sweep stays in either store.
            runner.close_bar()
            recorder.discard(runner.records)
            raise
        except BaseException as error:
            runner.close_bar()
            runner.abandon(f"the sweep stopped: {type(error).__name__}: {error}")
            recorder.close(failed=True)
            raise
        runner.close_bar()
        self._finish(recorder, runner, url, mirror, sweep_dir)
        return returns

    @staticmethod
    def _open_storage(url: str) -> None:
        from ivory_hydra.store import open_storage

        try:
            open_storage(url)
        except ValueError as error:
            raise SweepInputError(f"hydra.sweeper.storage={redact_url(url)}: {error}") from None

    @staticmethod
    def _check_same_sweep(url: str, study_name: str, definition: dict[str, Any]) -> None:
        """A study holds one sweep: resuming it with another definition is an error."""
        from ivory_hydra.store import find_study, open_storage

        study = find_study(open_storage(url), study_name)
        if study is None:
            return
        stored = study.user_attrs.get("definition")
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

    def _mirror(self, experiment: str, cwd: Path) -> MlflowMirror | None:
        if not self.mlflow_enabled:
            return None
        from ivory_hydra.mirror import MlflowMirror
        from ivory_hydra.mlflow_store import resolve_tracking_uri

        return MlflowMirror(resolve_tracking_uri(self.tracking_uri, cwd), experiment)

    def _recorder(
        self,
        url: str,
        experiment: str,
        study_name: str,
        job_name: str,
        definition: dict[str, Any],
        params: Sequence[SweepParam],
        plan: Plan,
        mirror: MlflowMirror | None,
    ) -> Recorder:
        from ivory_hydra.distributions import distributions_for
        from ivory_hydra.recorder import Recorder

        distributions = distributions_for(
            {p.name: [v.value for v in p.values] for p in params},
            log={p.name for p in params if p.log},
        )
        described = json.dumps(definition["params"])
        return Recorder(
            storage_url=url,
            experiment=experiment,
            study_name=study_name,
            direction=self.direction,
            metric=self.metric,
            distributions=distributions,
            mirror=mirror,
            study_attrs={"definition": definition, "job_name": job_name},
            parent_tags={
                "ivory.mode": plan.mode,
                "ivory.definition": described,
                "ivory.command": _redacted_command(),
            },
        ).open()

    def _announce(
        self, recorder: Recorder, url: str, mirror: MlflowMirror | None, plan: Plan
    ) -> None:

        log.info(
            f"Ivory sweeper: {plan.mode} of {plan.total} jobs as {recorder.task_name} "
            f"(study {recorder.study_name!r})"
        )
        log.info(f"Optuna storage used by this sweep: {redact_url(url)}")
        if mirror is not None:
            log.info(f"MLflow tracking store used by this sweep: {redact_url(mirror.tracking_uri)}")

    def _finish(
        self,
        recorder: Recorder,
        runner: SweepRunner,
        url: str,
        mirror: MlflowMirror | None,
        sweep_dir: Path,
    ) -> None:
        from ivory_hydra.summary import summary_table, write_results

        best = recorder.best()
        failed = runner.failed
        results: dict[str, Any] = {
            "task": recorder.task_name,
            "study_name": recorder.study_name,
            "storage": redact_url(url),
            "mode": self.mode,
            "direction": self.direction,
            "metric": self.metric,
            "best": None,
            "decisions": runner.decisions_by_name(),
            "trials": recorder.counts(),
            "failed": [r.name for r in failed],
        }
        rows: dict[str, Any] = {}
        if best is not None:
            results["best"] = {
                "run": best.run_name,
                "score": best.score,
                "params": best.params,
                "overrides": best.attrs.get("overrides", ""),
                "trial_number": best.trial_number,
                "output_dir": best.attrs.get("output_dir"),
            }
            rows = {
                "best run": best.run_name,
                **best.params,
                self.metric or "score": best.score,
            }
        path = write_results(sweep_dir / "results.yaml", results)
        recorder.close(failed=bool(failed), artifacts=[path], best=best)
        if rows:
            log.info("Best params and score:\n" + summary_table(rows))
        else:
            log.info("No job reported a score.")
        log.info(f"Results: {path}")
        log.info(f"Look at the study: {dashboard_command(redact_url(url))}")
        if mirror is not None:
            log.info(f"Look at the runs: {mirror.ui_command()}")
        if failed:
            names = ", ".join(
                f"{r.name} (job {r.trial_number}: {r.attrs.get('overrides', '')})" for r in failed
            )
            raise SweepFailedError(f"{len(failed)} of {len(runner.records)} jobs failed: {names}")


def _redacted_command() -> str:
    return redact_text(" ".join(sys.argv))


def _plain_params(params: Any) -> dict[str, Any]:
    """``hydra.sweeper.params`` as plain Python data (lists stay lists)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    return dict(params or {})

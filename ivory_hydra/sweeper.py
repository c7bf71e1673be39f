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

from ivory_hydra.display import run_line
from ivory_hydra.errors import SweepDefinitionError, SweepFailedError, SweepInputError
from ivory_hydra.overrides import (
    SweepParam,
    merge_arguments,
    param_from_override,
    params_arguments,
)
from ivory_hydra.plan import Plan, Point, best_index, check_direction, check_mode
from ivory_hydra.scores import MissingMetricError, Outcome, outcome_from_value
from ivory_hydra.store import dashboard_command, storage_url

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.plugins.launcher import Launcher
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

    from ivory_hydra.job_callback import MlflowJobCallback
    from ivory_hydra.mirror import MlflowMirror
    from ivory_hydra.progress import ProgressBar
    from ivory_hydra.recorder import Recorder, RunRecord

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
        try:
            check_mode(self.mode)
            check_direction(self.direction)
        except ValueError as error:
            key = "mode" if "mode" in str(error) else "direction"
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
        by_name = {p.name: p for p in params}
        from ivory_hydra.validation import validate_sweep

        first = [p.override(p.values[0]) for p in params]
        validate_sweep(self.hydra_context.config_loader, self.config, params, first)

        job_name = str(OmegaConf.select(self.config, "hydra.job.name") or "app")
        definition = self.definition(params)
        cwd = Path(str(OmegaConf.select(self.config, "hydra.runtime.cwd") or "."))
        url = storage_url(self.storage, cwd)
        experiment = self.experiment_name or job_name
        self._open_storage(url)
        mirror = self._mirror(experiment, cwd)
        recorder = self._recorder(url, experiment, job_name, definition, params, plan, mirror)

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self._announce(recorder, url, mirror, plan)

        runner = _Runner(self, recorder, mirror, by_name, plan)
        try:
            returns = runner.run()
        except SweepInputError:
            # Found on the first job (a metric missing from its mapping): as for
            # any bad input, nothing of this sweep stays in either store.
            runner.close_bar()
            recorder.discard(runner.records)
            raise
        except BaseException:
            recorder.close(failed=True)
            runner.close_bar()
            raise
        runner.close_bar()
        self._finish(recorder, runner, url, mirror, sweep_dir)
        return returns

    @staticmethod
    def _open_storage(url: str) -> None:
        from ivory_hydra.mirror import redact_url
        from ivory_hydra.store import open_storage

        try:
            open_storage(url)
        except Exception as error:  # noqa: BLE001 - drivers raise many kinds
            raise SweepInputError(
                f"hydra.sweeper.storage={redact_url(url)}: cannot open this Optuna storage: "
                f"{type(error).__name__}: {redact_url(str(error))}"
            ) from None

    def _mirror(self, experiment: str, cwd: Path) -> MlflowMirror | None:
        if not self.mlflow_enabled:
            return None
        from ivory_hydra.mirror import MlflowMirror

        uri = self.tracking_uri
        if uri is None:
            import os

            uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{cwd / 'mlflow.db'}"
        return MlflowMirror(uri, experiment)

    def _recorder(
        self,
        url: str,
        experiment: str,
        job_name: str,
        definition: dict[str, Any],
        params: Sequence[SweepParam],
        plan: Plan,
        mirror: MlflowMirror | None,
    ) -> Recorder:
        from ivory_hydra.recorder import Recorder
        from ivory_hydra.store import distribution_for

        distributions = {
            p.name: distribution_for([v.value for v in p.values], log=p.log) for p in params
        }
        described = json.dumps(definition["params"])
        return Recorder(
            storage_url=url,
            experiment=experiment,
            study_name=self.study_name or study_name_for(job_name, definition),
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
        from ivory_hydra.mirror import redact_url

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
        runner: _Runner,
        url: str,
        mirror: MlflowMirror | None,
        sweep_dir: Path,
    ) -> None:
        from ivory_hydra.mirror import redact_url
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
        recorder.close(failed=bool(failed), artifacts=[path])
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
            raise SweepFailedError(f"{len(failed)} of {runner.launched} jobs failed: {names}")


class _Runner:
    """Steps through a plan batch by batch; skips what a previous run finished."""

    def __init__(
        self,
        sweeper: IvorySweeperImpl,
        recorder: Recorder,
        mirror: MlflowMirror | None,
        by_name: dict[str, SweepParam],
        plan: Plan,
    ) -> None:
        self.sweeper = sweeper
        self.recorder = recorder
        self.mirror = mirror
        self.by_name = by_name
        self.plan = plan
        self.failed: list[RunRecord] = []
        self.records: list[RunRecord] = []
        self.probing = False
        self.launched = 0
        self.winners: dict[str, Any] = {}
        self._bar: ProgressBar | None = None
        self._done = 0
        self._callback: MlflowJobCallback | None = None

    # ------------------------------------------------------------ output

    def _print(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line)
        else:
            print(line, flush=True)

    def close_bar(self) -> None:
        """Close the progress bar if there is one."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _advance(self, count: int) -> None:
        self._done += count
        if self._bar is not None:
            self._bar.advance_to(self._done)

    def decisions_by_name(self) -> dict[str, Any]:
        """Chain decisions as plain values."""
        return {name: value.value for name, value in self.winners.items()}

    # ------------------------------------------------------------ run

    def run(self) -> list[Sequence[JobReturn]]:
        """Run every step of the plan and return the launcher's results per batch."""
        from ivory_hydra.progress import ProgressBar

        self._bar = ProgressBar(self.plan.total, self.sweeper.verbose)
        self._install(self._bar.callback())
        if self.mirror is not None:
            from ivory_hydra.job_callback import MlflowJobCallback

            self._callback = MlflowJobCallback(self.mirror.tracking_uri)
            self._install(self._callback)
        done = self.recorder.finished_by_slot()
        decisions = self.recorder.decisions
        returns: list[Sequence[JobReturn]] = []
        for step in range(self.plan.num_steps):
            points = self.plan.points(step, self.winners)
            todo = [p for p in points if p.slot not in done]
            self._advance(len(points) - len(todo))
            if len(todo) < len(points):
                log.info(f"Resuming: {len(points) - len(todo)} finished jobs are not run again")
            for batch in self._batches(todo):
                returns.append(self._launch(batch))
            self._decide(step, len(points), decisions)
        return returns

    def _batches(self, points: list[Point]) -> list[list[Point]]:
        size = self.sweeper.max_batch_size or len(points) or 1
        batches = [points[i : i + size] for i in range(0, len(points), size)]
        self.probing = self.sweeper.metric is not None and not self.recorder.counts()
        if self.probing and batches and len(batches[0]) > 1:
            # The first job alone: a metric missing from its result stops the sweep.
            batches = [[batches[0][0]], batches[0][1:], *batches[1:]]
        return batches

    def _install(self, callback: Any) -> None:
        """Add ``callback`` to Hydra's callbacks, replacing one of its type from a former sweep."""
        assert self.sweeper.hydra_context is not None
        callbacks = self.sweeper.hydra_context.callbacks.callbacks
        callbacks[:] = [c for c in callbacks if type(c) is not type(callback)]
        callbacks.append(callback)

    def _launch(self, points: list[Point]) -> Sequence[JobReturn]:
        assert self.sweeper.launcher is not None
        overrides = [self._overrides(p) for p in points]
        records = self.recorder.start(
            points,
            params=[{k: v.value for k, v in p.params.items()} for p in points],
            attrs=[{"overrides": " ".join(o)} for o in overrides],
        )
        self.records.extend(records)
        for record in records:
            self._print(run_line(record.name, record.params))
        if self._callback is not None:
            self._callback.run_ids = {
                r.trial_number: r.mlflow_run_id for r in records if r.mlflow_run_id
            }
        results: list[JobReturn] = []
        for start, end in _contiguous(records):
            results.extend(
                self.sweeper.launcher.launch(
                    overrides[start:end], initial_job_idx=records[start].trial_number
                )
            )
        self.launched += len(records)
        for record, result in zip(records, results, strict=True):
            self._record(record, result)
        self._advance(len(records))
        return results

    def _overrides(self, point: Point) -> list[str]:
        return [
            self.by_name[name].override(point.params[name])
            for name in self.by_name
            if name in point.params
        ]

    def _record(self, record: RunRecord, result: JobReturn) -> None:
        from hydra.core.utils import JobStatus

        attrs: dict[str, Any] = {}
        output_dir = _output_dir(result)
        if output_dir:
            attrs["output_dir"] = output_dir
        metric = self.sweeper.metric
        if result.status == JobStatus.FAILED:
            error = result._return_value
            outcome = Outcome("fail", None, f"{type(error).__name__}: {error}")
        else:
            value = result._return_value
            logged = None
            if (
                metric
                and self.mirror is not None
                and record.mlflow_run_id
                and not isinstance(value, dict)
            ):
                logged = self.mirror.latest_metric(record.mlflow_run_id, metric)
            try:
                outcome = outcome_from_value(value, metric, logged)
            except MissingMetricError as error:
                outcome = Outcome("fail", None, str(error))
                self.recorder.finish(record, outcome, attrs)
                if self.probing and len(self.records) == 1:
                    raise SweepDefinitionError(
                        f"hydra.sweeper.metric={metric}: {error.args[0]}"
                    ) from None
                self.failed.append(record)
                return
        self.recorder.finish(record, outcome, attrs)
        if outcome.failed:
            self.failed.append(record)

    def _decide(self, step: int, size: int, decisions: dict[str, int]) -> None:
        name = self.plan.stepping(step)
        if name is None or not self.plan.use_best_param:
            return
        if name in decisions:
            index = decisions[name]
        else:
            scores = self.recorder.step_scores(step, size)
            best = best_index(scores, self.sweeper.direction)
            index = 0 if best is None else best
            self.recorder.decide(name, index)
        value = self.plan.swept[name][index]
        self.winners[name] = value
        log.info(f"Chain: {name} is fixed at {value.text}")


def _redacted_command() -> str:
    from ivory_hydra.mirror import redact_text

    return redact_text(" ".join(sys.argv))


def _plain_params(params: Any) -> dict[str, Any]:
    """``hydra.sweeper.params`` as plain Python data (lists stay lists)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    return dict(params or {})


def _contiguous(records: Sequence[RunRecord]) -> list[tuple[int, int]]:
    """Runs of records whose trial numbers follow each other (one launch each)."""
    spans: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records) or records[i].trial_number != records[i - 1].trial_number + 1:
            spans.append((start, i))
            start = i
    return spans


def _output_dir(result: JobReturn) -> str | None:
    from omegaconf import OmegaConf

    if result.hydra_cfg is None:
        return None
    value = OmegaConf.select(result.hydra_cfg, "hydra.runtime.output_dir")
    return None if value is None else str(value)

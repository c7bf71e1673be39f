"""The end of a sweep: the summary, ``results.yaml``, the chain plot, and where to look."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.budgets import MAX_FAILURES
from ivory_hydra.core.display import plural
from ivory_hydra.core.redact import redact_url
from ivory_hydra.stores.format import RESULTS_LINK, Files
from ivory_hydra.sweeper.errors import SweepFailedError

if TYPE_CHECKING:
    from ivory_hydra.engine.engine import Engine
    from ivory_hydra.stores.mlflow_mirror import MlflowMirror
    from ivory_hydra.sweeper.definition import SweepDefinition

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Report:
    """Where one sweep's results go."""

    sweep: SweepDefinition
    url: str
    study_name: str
    mirror: MlflowMirror | None
    sweep_dir: Path

    def finish(self, engine: Engine, stopped: str | None = None) -> None:
        """Leave the sweep; the closer writes the summary and closes both stores.

        Raises :class:`SweepFailedError` when jobs failed (or ``stopped`` says why
        the sweep stopped early, or ``max_failures`` stopped it).
        """
        total = engine.plan.total
        if engine.coordination.shared:
            log.info(f"This worker ran {plural(engine.issued, 'job')} of {plural(total, 'job')}")
        if not engine.leave():
            mine = [f for f in engine.summary().failed if f.number in engine.mine]
            engine.close()
            log.info("Other workers still run this sweep; the last of them writes its summary")
            stop = engine.budgets.stop
            if stopped:
                raise SweepFailedError(stopped)
            if stop is not None and stop.setting == MAX_FAILURES:
                reasons = "; ".join(f"{f.run_name}: {f.outcome.reason}" for f in mine)
                raise SweepFailedError(
                    f"hydra.sweeper.{stop.reason}; this worker stopped"
                    + (f" ({reasons})" if reasons else "")
                )
            if mine:
                raise SweepFailedError(f"{plural(len(mine), 'job')} of this worker failed")
            return
        summary = engine.summary()
        path = self.write(summary.as_dict(), engine.parent_run_id)
        engine.close(summary, artifacts=[path, *self.chain_plot(engine)])
        if engine.mirror_lags and self.mirror is not None:
            where = redact_url(self.mirror.tracking_uri)
            log.warning(f"MLflow lags: run the same command again once {where} is back")
        if stopped:
            raise SweepFailedError(stopped)
        if summary.failed:
            names = ", ".join(
                f"{f.run_name} (job {f.number}: {f.attrs.get('overrides', '')})"
                for f in summary.failed
            )
            why = f"{len(summary.failed)} of {summary.total} jobs failed: {names}"
            stop = summary.stopped_by
            if stop is not None and stop.setting == MAX_FAILURES:
                why = f"hydra.sweeper.{stop.reason}, the sweep stopped; {why}"
            raise SweepFailedError(why)

    def chain_plot(self, engine: Engine) -> list[Path]:
        """A chain sweep's figure, ``chain.png`` in the sweep folder (none without matplotlib)."""
        if engine.plan.mode != "chain":
            return []
        from ivory_hydra.sweeper.chain_plot import plot_chain

        objectives = self.sweep.definition.objectives
        try:
            path = plot_chain(
                engine.chain_steps(),
                self.sweep_dir / Files.CHAIN_PLOT,
                metric=objectives.metric_names[0],
                direction=objectives.direction,
                log_params={p.name for p in self.sweep.params if p.log},
            )
        except Exception as error:  # noqa: BLE001 - a figure must not fail a finished sweep
            log.warning(f"No chain plot: {type(error).__name__}: {error}")
            return []
        if path is not None:
            log.info(f"Chain plot: {path}")
        return [path] if path is not None else []

    def write(self, result: dict[str, Any], parent_run_id: str | None) -> Path:
        """Write ``results.yaml`` and log the sweep's story and where to look."""
        from ivory_hydra.core.display import summary_lines
        from ivory_hydra.stores.mlflow_ui import where_in_mlflow
        from ivory_hydra.stores.optuna_storage import dashboard_hint
        from ivory_hydra.sweeper.results import write_results

        definition = self.sweep.definition
        objectives = definition.objectives
        metric = objectives.metric_arg
        link, mlflow_lines = where_in_mlflow(
            self.mirror,
            parent_run_id,
            result,
            objectives,
            self.sweep_dir / Files.RESULTS,
        )
        results = {
            **result,
            "study_name": self.study_name,
            "storage": redact_url(self.url),
            "mode": definition.plan.mode,
            **objectives.stored,
            RESULTS_LINK: link,
        }
        path = write_results(self.sweep_dir / Files.RESULTS, results)
        if definition.plan.mode == "optimize":  # what scripts for Hydra's Optuna sweeper read
            from ivory_hydra.sweeper.optuna_sweeper import write_optimization_results

            write_optimization_results(
                self.sweep_dir,
                without_rows(result, {z.name for z in self.sweep.zips}),
                objectives.count,
                self.sweep.by_name.values(),
            )
        lines = summary_lines(result, metric, direction=objectives.direction)
        lines += [f"Results: {path}", f"Optuna:  {dashboard_hint(self.url)}", *mlflow_lines]
        log.info("\n".join(lines))
        return path


def without_rows(summary: dict[str, Any], names: Collection[str]) -> dict[str, Any]:
    """A summary whose params leave out the zipped dimensions ``names``: Hydra's Optuna
    sweeper's ``best_params`` are overrides, and a row's overrides are its members'.

    >>> without_rows({"best": {"params": {"arch": "m=a n=1", "m": "a", "n": 1}}}, {"arch"})
    {'best': {'params': {'m': 'a', 'n': 1}}, 'pareto': []}
    """
    if not names:
        return summary

    def strip(entry: Any) -> Any:
        if not isinstance(entry, dict) or "params" not in entry:
            return entry
        return {**entry, "params": {k: v for k, v in entry["params"].items() if k not in names}}

    pareto = [strip(e) for e in summary.get("pareto") or []]
    return {**summary, "best": strip(summary.get("best")), "pareto": pareto}

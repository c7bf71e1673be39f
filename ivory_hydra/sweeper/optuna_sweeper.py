"""What users of Hydra's Optuna sweeper rely on beyond its config.

- ``optimization_results.yaml`` in the sweep folder (optimize mode), in the Optuna
  sweeper's format, so that scripts that read it keep working:

  - one objective: ``name: optuna``, ``best_params`` (the sampled params only, keyed
    as their override was, ``+w`` included) and ``best_value``;
  - several objectives: ``name: optuna`` and ``solutions``, the Pareto-optimal trials,
    each with ``params`` and ``values``.

- the ``motpe`` sampler's name, which Optuna 4.0 removed, saying so.

Both sides of the format come from Hydra's own ``_impl.py``
(``plugins/hydra_optuna_sweeper``): it saves ``study.best_trial.params`` and
``study.best_trial.value``, or ``study.best_trials``, with ``OmegaConf.save``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ivory_hydra.stores.format import Files

if TYPE_CHECKING:
    from ivory_hydra.sweeper.overrides import SweepParam

FILE_NAME = Files.OPTIMIZATION_RESULTS


def sampled_params(params: Mapping[str, Any], swept: Iterable[SweepParam]) -> dict[str, Any]:
    """A trial's params as Hydra's Optuna sweeper lists them: the sampled ones only.

    Ivory also records a fixed value (``y=0``) and a deleted key (``~z``) as
    one-value trial params; the Optuna sweeper's trials hold only what the sampler
    picked, under the override's own key (``+x``). What a custom search space added
    (``z``, ``+w``) is sampled too.

    >>> from ivory_hydra.sweeper.overrides import SweepParam, SweepValue
    >>> x = SweepParam("+x", (SweepValue("1", 1), SweepValue("2", 2)))
    >>> y = SweepParam("y", (SweepValue("0", 0),))
    >>> z = SweepParam("~z", (SweepValue("", None),), delete=True)
    >>> sampled_params({"y": 0, "z": None, "x": 2, "+w": 0.5}, [x, y, z])
    {'+x': 2, '+w': 0.5}
    """
    swept = list(swept)
    keys = {p.name: p.name if p.delete else p.key for p in swept if p.swept}
    fixed = {p.name for p in swept if not p.swept}
    return {keys.get(name, name): value for name, value in params.items() if name not in fixed}


def optimization_results(
    summary: Mapping[str, Any], objectives: int, swept: Iterable[SweepParam]
) -> dict[str, Any] | None:
    """The content of ``optimization_results.yaml``, from a sweep's summary.

    ``summary`` is what ``results.yaml`` holds (``best``, ``pareto``); None when no
    trial completed (Hydra's Optuna sweeper then fails on ``study.best_trial``).

    >>> from ivory_hydra.sweeper.overrides import SweepParam, SweepValue
    >>> x = SweepParam("x", (SweepValue("1", 1), SweepValue("2", 2)))
    >>> optimization_results({"best": {"score": 1.0, "params": {"x": 1}}}, 1, [x])
    {'name': 'optuna', 'best_params': {'x': 1}, 'best_value': 1.0}
    >>> front = [{"run": "run#0", "values": [1.0, 2.0], "params": {"x": 1}}]
    >>> optimization_results({"best": None, "pareto": front}, 2, [x])
    {'name': 'optuna', 'solutions': [{'params': {'x': 1}, 'values': [1.0, 2.0]}]}
    >>> optimization_results({"best": None, "pareto": []}, 1, [x]) is None
    True
    """
    swept = list(swept)
    if objectives > 1:
        front = summary.get("pareto") or []
        if not front:
            return None
        solutions = [
            {"params": sampled_params(t["params"], swept), "values": list(t["values"])}
            for t in front
        ]
        return {"name": "optuna", "solutions": solutions}
    best = summary.get("best")
    if not best or best.get("score") is None:
        return None
    return {
        "name": "optuna",
        "best_params": sampled_params(best["params"], swept),
        "best_value": best["score"],
    }


def write_optimization_results(
    sweep_dir: Path, summary: Mapping[str, Any], objectives: int, swept: Iterable[SweepParam]
) -> Path | None:
    """Write ``optimization_results.yaml`` (atomically) as Hydra's Optuna sweeper does.

    Returns its path, or None when no trial completed (nothing is written then).
    """
    from omegaconf import OmegaConf

    results = optimization_results(summary, objectives, swept)
    if results is None:
        return None
    path = sweep_dir / FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(results)))
    tmp.replace(path)
    return path


def motpe_removed(*args: Any, **kwargs: Any) -> NoReturn:
    """The ``motpe`` sampler, which Optuna 4.0 removed: says so (as Hydra's Optuna sweeper)."""
    raise ValueError(
        "The 'motpe' sampler was removed in Optuna 4.0. "
        "Use 'hydra/sweeper/sampler=tpe' instead. "
        "TPESampler now handles multi-objective optimization."
    )

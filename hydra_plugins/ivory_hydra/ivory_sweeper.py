"""Registers the ``ivory`` sweeper (``hydra/sweeper=ivory``); the logic is in ``ivory_hydra``.

Hydra imports this module in every app at start-up, so it imports nothing heavy:
Optuna and MLflow are loaded only when a sweep runs.
"""

from typing import Any, List, Sequence  # noqa: UP035 - Hydra's signature

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from ivory_hydra.sweeper.settings import IvorySweeperConf

#: Optuna's samplers, as Hydra's Optuna sweeper offers them (any of their arguments may be set).
SAMPLERS = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsgaii": "NSGAIISampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
    "grid": "GridSampler",
}


def _open(node: DictConfig) -> DictConfig:
    # New keys are welcome without ``+``: the sweep's params on the command line
    # (``hydra.sweeper.params.lr=1e-3_1e2:6.log``) and any argument of a sampler.
    OmegaConf.set_struct(node, False)
    return node


def _sweeper_node() -> DictConfig:
    node = OmegaConf.structured(IvorySweeperConf)
    _open(node.params)
    return node


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="ivory", node=_sweeper_node(), provider="ivory_hydra")
for _name, _cls in SAMPLERS.items():
    _store.store(
        group="hydra/sweeper/sampler",
        name=_name,
        node=_open(OmegaConf.create({"_target_": f"optuna.samplers.{_cls}", "seed": None})),
        provider="ivory_hydra",
    )
# Hydra's Optuna sweeper keeps the name of the sampler that Optuna 4.0 removed, to say so.
_store.store(
    group="hydra/sweeper/sampler",
    name="motpe",
    node=_open(OmegaConf.create({"_target_": "ivory_hydra.sweeper.optuna_sweeper.motpe_removed"})),
    provider="ivory_hydra",
)


class IvorySweeper(Sweeper):
    """Ivory's product and chain sweeps, recorded in Optuna and mirrored to MLflow."""

    def __init__(self, **kwargs: Any) -> None:
        from ivory_hydra.sweeper.impl import IvorySweeperImpl
        from ivory_hydra.sweeper.settings import SweeperSettings

        self.sweeper = IvorySweeperImpl(SweeperSettings.from_node(kwargs))

    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        """Hand Hydra's context to the implementation."""
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Sequence[Any]:  # noqa: UP006
        """Run the sweep over the task overrides ``arguments``."""
        return self.sweeper.sweep(arguments)

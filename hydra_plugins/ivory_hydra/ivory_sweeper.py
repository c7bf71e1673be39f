"""Registers the ``ivory`` sweeper (``hydra/sweeper=ivory``); the logic is in ``ivory_hydra``.

Hydra imports this module in every app at start-up, so it imports nothing heavy:
Optuna and MLflow are loaded only when a sweep runs.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence  # noqa: UP035 - OmegaConf needs typing

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


@dataclass
class MlflowConf:
    """Where the sweep is mirrored in MLflow."""

    enabled: bool = True
    tracking_uri: Optional[str] = None  # noqa: UP045
    experiment_name: Optional[str] = None  # noqa: UP045


@dataclass
class IvorySweeperConf:
    """The ``hydra.sweeper`` config of ``hydra/sweeper=ivory``."""

    _target_: str = "hydra_plugins.ivory_hydra.ivory_sweeper.IvorySweeper"
    mode: str = "product"
    use_best_param: bool = True
    metric: Optional[str] = None  # noqa: UP045
    direction: str = "minimize"
    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    max_batch_size: Optional[int] = None  # noqa: UP045
    storage: Optional[str] = None  # noqa: UP045
    study_name: Optional[str] = None  # noqa: UP045
    mlflow: MlflowConf = field(default_factory=MlflowConf)
    verbose: int = 1
    heartbeat_interval: float = 10.0
    grace_period: float = 60.0


def _sweeper_node() -> DictConfig:
    # ``params`` takes new keys without ``+``, so that typed apps can write
    # ``hydra.sweeper.params.lr=1e-3_1e2:6.log`` on the command line.
    node = OmegaConf.structured(IvorySweeperConf)
    OmegaConf.set_struct(node.params, False)
    return node


ConfigStore.instance().store(
    group="hydra/sweeper", name="ivory", node=_sweeper_node(), provider="ivory_hydra"
)


class IvorySweeper(Sweeper):
    """Ivory's product and chain sweeps, recorded in Optuna and mirrored to MLflow."""

    def __init__(self, **kwargs: Any) -> None:
        from ivory_hydra.sweeper.impl import IvorySweeperImpl

        self.sweeper = IvorySweeperImpl(**kwargs)

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

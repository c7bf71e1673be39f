"""Registers the ``ivory`` sweeper (``hydra/sweeper=ivory``); the logic is in ``ivory_hydra``.

Hydra imports this module in every app at start-up, so it imports nothing heavy:
Optuna and MLflow are loaded only when a sweep runs.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence  # noqa: UP035 - OmegaConf needs typing

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import MISSING, DictConfig, OmegaConf


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
    _recursive_: bool = False  # the sweeper builds its sampler and pruner itself
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])  # noqa: UP006
    mode: str = "product"
    use_best_param: bool = True
    metric: Any = None  # a name, or a list of names (several objectives)
    direction: Any = "minimize"  # minimize or maximize, or a list (several objectives)
    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    max_batch_size: Optional[int] = None  # noqa: UP045
    storage: Optional[str] = None  # noqa: UP045
    study_name: Optional[str] = None  # noqa: UP045
    mlflow: MlflowConf = field(default_factory=MlflowConf)
    verbose: int = 1
    heartbeat_interval: float = 10.0
    grace_period: float = 60.0
    # optimize mode (and pruning in every mode), named as in Hydra's Optuna sweeper
    sampler: Any = MISSING  # from the group hydra/sweeper/sampler (tpe by default)
    pruner: Any = None
    n_trials: Optional[int] = None  # noqa: UP045
    n_jobs: Optional[int] = None  # noqa: UP045 - Hydra's Optuna sweeper's name for max_batch_size
    max_failure_rate: Optional[float] = None  # noqa: UP045
    custom_search_space: Optional[str] = None  # noqa: UP045


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

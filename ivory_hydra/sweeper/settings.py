"""The sweeper's settings, ``hydra.sweeper.*``: one typed dataclass that Hydra checks.

The plugin registers it in Hydra's ConfigStore, so that Hydra itself rejects a
wrong type (``heartbeat_interval=abc``) before the sweeper runs. Imports
nothing heavy: Hydra imports it in every app.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional  # noqa: UP035 - OmegaConf needs typing

from omegaconf import MISSING

#: The settings that may hold a secret: shipped to jobs unresolved when they
#: are interpolations such as ``${oc.env:IVORY_STORAGE}``.
SECRET_SETTINGS = ("storage", "mlflow.tracking_uri")


@dataclass
class MlflowSettings:
    """Where the sweep is mirrored in MLflow."""

    enabled: bool = True
    tracking_uri: Optional[str] = None  # noqa: UP045
    experiment_name: Optional[str] = None  # noqa: UP045
    timeout: float = 5.0  # seconds MLflow calls may hold a job (stores.mlflow_bound)


@dataclass
class SweeperSettings:
    """What ``hydra.sweeper`` holds for ``hydra/sweeper=ivory`` (see the README)."""

    mode: str = "product"
    use_best_param: bool = True
    metric: Any = None  # a name, or a list of names (several objectives)
    direction: Any = "minimize"  # minimize or maximize, or a list (several objectives)
    repeat: Any = field(default_factory=list)  # swept params whose values repeat (folds, seeds)
    aggregate: str = "mean"  # a configuration's score from its repeats: mean, median, min, max
    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    max_batch_size: Optional[int] = None  # noqa: UP045
    storage: Optional[str] = None  # noqa: UP045
    study_name: Optional[str] = None  # noqa: UP045
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    verbose: int = 1
    dry_run: bool = False  # print what the sweep would run (and a resume skip), write nothing
    heartbeat_interval: float = 10.0
    grace_period: float = 60.0
    storage_retry: float = 300.0  # seconds a lost storage connection is waited out
    # optimize mode (and pruning in every mode), named as in Hydra's Optuna sweeper
    sampler: Any = None  # from the group hydra/sweeper/sampler (tpe by default)
    pruner: Any = None
    n_trials: Optional[int] = None  # noqa: UP045
    n_jobs: Optional[int] = None  # noqa: UP045 - Hydra's Optuna sweeper's name for max_batch_size
    max_failure_rate: Optional[float] = None  # noqa: UP045
    custom_search_space: Optional[str] = None  # noqa: UP045

    @classmethod
    def from_node(cls, node: Any) -> "SweeperSettings":  # noqa: UP037 - no __future__ here
        """The settings from Hydra's ``hydra.sweeper`` node (types checked by OmegaConf)."""
        from omegaconf import OmegaConf

        names = {f for f in cls.__dataclass_fields__}
        given = {k: v for k, v in dict(node).items() if k in names}
        merged = OmegaConf.merge(OmegaConf.structured(cls), given)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]

    @property
    def batch_size(self) -> Optional[int]:  # noqa: UP045
        """``max_batch_size``, or Hydra's Optuna sweeper's ``n_jobs``."""
        return self.max_batch_size if self.max_batch_size is not None else self.n_jobs


@dataclass
class IvorySweeperConf(SweeperSettings):
    """The node registered as ``hydra/sweeper=ivory``."""

    _target_: str = "hydra_plugins.ivory_hydra.ivory_sweeper.IvorySweeper"
    _recursive_: bool = False  # the sweeper builds its sampler and pruner itself
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])  # noqa: UP006
    sampler: Any = MISSING  # the defaults list's choice (tpe unless chosen)

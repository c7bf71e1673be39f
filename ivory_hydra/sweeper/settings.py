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
    """Mirror every sweep and job to MLflow; off, MLflow is never imported."""
    tracking_uri: Optional[str] = None  # noqa: UP045
    """An MLflow tracking URI (`http://...` for a server); `null`: `MLFLOW_TRACKING_URI`,
    else `sqlite:///<cwd>/mlflow.db`."""
    experiment_name: Optional[str] = None  # noqa: UP045
    """The MLflow experiment; `null`: the job name."""
    timeout: float = 5.0  # seconds MLflow calls may hold a job (stores.mlflow_bound)
    """Seconds that ivory-hydra's own MLflow calls may hold one job, in total (the
    sweeper's calls get it each); past it the job goes on and the mirror catches up."""


@dataclass
class SweeperSettings:
    """What ``hydra.sweeper`` holds for ``hydra/sweeper=ivory``.

    Each field's docstring is its line in the settings reference of the docs
    (``docs/hooks.py`` renders them; a field without one fails the docs build).
    """

    mode: str = "product"
    """`product` (every combination, the last param fastest), `chain` (one param at a time)
    or `optimize` (an Optuna sampler picks the values)."""
    use_best_param: bool = True
    """Chain mode: fix each param at its best value before the next one steps."""
    metric: Any = None
    """Which score to use when a job returns a mapping (or logs to MLflow); a list with
    several objectives."""
    direction: Any = "minimize"
    """`minimize` or `maximize`; a list for several objectives (optimize mode)."""
    repeat: Any = field(default_factory=list)
    """Swept params whose values repeat each configuration (folds, seeds): a list or one
    name."""
    aggregate: str = "mean"
    """A configuration's score from its repeats': `mean`, `median`, `min` or `max`."""
    params: Dict[str, Any] = field(default_factory=dict)  # noqa: UP006
    """Sweep definitions, as in Hydra's BasicSweeper; the command line wins on the same
    key."""
    max_batch_size: Optional[int] = None  # noqa: UP045
    """At most this many jobs per launcher call; `null`: up to 100 (optimize mode: 1; a
    worker among several, or a sweep with `timeout` or `max_failures`: the launcher's
    `n_jobs`)."""
    storage: Optional[str] = None  # noqa: UP045
    """An Optuna storage: an SQLAlchemy URL, a `*.db` path, `grpc://HOST:PORT` (a storage
    proxy), or another path for a journal file; `null`: `sqlite:///<cwd>/optuna.db`."""
    study_name: Optional[str] = None  # noqa: UP045
    """`null`: `<job>-<mode>-<swept keys>-<digest of the definition>`, e.g.
    `train-chain-model-lr-1a51d027`."""
    mlflow: MlflowSettings = field(default_factory=MlflowSettings)
    """Where the sweep is mirrored in MLflow (the `mlflow.*` settings)."""
    verbose: int = 1
    """`0` hides the progress bar (the run lines stay)."""
    dry_run: bool = False
    """Print the jobs the command would run (and what a resume leaves out), then exit 0
    writing nothing."""
    heartbeat_interval: float = 10.0
    """Seconds between the heartbeats of every running job (and of the sweeper)."""
    grace_period: float = 60.0
    """A job or sweeper whose heartbeats stopped this long is dead (at once when its
    process is gone from this machine)."""
    storage_retry: float = 300.0
    """Seconds a lost connection to the Optuna storage is waited out before the sweep
    stops (rerunning resumes)."""
    devices: Any = None
    """Device ids that jobs take one at a time (`[0,1,2,3]`), `auto` (the GPUs NVML
    reports) or `null` (none): each job sees its own as `CUDA_VISIBLE_DEVICES`."""
    devices_per_job: int = 1
    """How many of `devices` each job holds."""
    # optimize mode (and pruning in every mode), named as in Hydra's Optuna sweeper
    sampler: Any = None
    """Optimize mode: an `optuna.samplers` class, from the group `hydra/sweeper/sampler`
    (`tpe` by default, `random`, `cmaes`, `nsgaii`, `qmc`, `gp`, `grid`) or a node with
    `_target_`."""
    pruner: Any = None
    """An `optuna.pruners` class as a node with `_target_`; works in every mode."""
    n_trials: Optional[int] = None  # noqa: UP045
    """Optimize mode (required): the sweep's total; finished trials count across resumes
    and workers."""
    n_jobs: Optional[int] = None  # noqa: UP045
    """Hydra's Optuna sweeper's name for `max_batch_size`."""
    max_failure_rate: Optional[float] = None  # noqa: UP045
    """Stop the sweep when a batch fails more often than this (0 to 1); `null`: never."""
    timeout: Optional[float] = None  # noqa: UP045
    """Seconds from the start of this run of the command (each worker's own clock): after
    it no job starts, running jobs finish, exit 0, and the same command resumes the rest."""
    max_failures: Optional[int] = None  # noqa: UP045
    """Once this many jobs of this run failed (`0`: the first failure), no new job starts,
    running jobs finish, and the exit is non-zero; counted across the workers of a sweep."""
    custom_search_space: Optional[str] = None  # noqa: UP045
    """Optimize mode: a function `f(cfg, trial)` that suggests more params, as in Hydra's
    Optuna sweeper."""

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

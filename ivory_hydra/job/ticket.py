"""What a job needs to own its trial, from whichever process runs it.

A :class:`Ticket` is built once per sweep (or task) and travels with every job
(pickled by joblib, Ray and submitit). It holds only plain values; a storage or
tracking URI given as an OmegaConf interpolation such as
``${oc.env:IVORY_STORAGE}`` travels unresolved and is resolved in the job's
own process, so its password is in no file that a launcher writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ivory_hydra.core.budgets import Budget
from ivory_hydra.core.objectives import Objectives
from ivory_hydra.stores.liveness import HEARTBEAT_INTERVAL, HOST
from ivory_hydra.stores.mlflow_bound import DEFAULT_TIMEOUT
from ivory_hydra.stores.retry import STORAGE_RETRY


def resolve_setting(value: str | None) -> str | None:
    """Resolve an OmegaConf interpolation (``${oc.env:...}``) in a setting.

    >>> os.environ["IVORY_DOCTEST_URL"] = "sqlite:///x.db"
    >>> resolve_setting("${oc.env:IVORY_DOCTEST_URL}"), resolve_setting("plain")
    ('sqlite:///x.db', 'plain')
    """
    if value is None or "${" not in value:
        return value
    import hydra  # noqa: F401 - registers Hydra's resolvers (oc.env is OmegaConf's own)
    from omegaconf import OmegaConf

    return str(OmegaConf.create({"value": value}).value)


@dataclass(frozen=True)
class Ticket:
    """The storage, the MLflow store, the scoring rule, the pruner and the budget of one
    sweep or task."""

    storage: str
    tracking_uri: str | None = None
    objectives: Objectives = field(default_factory=Objectives)
    study_name: str | None = None
    pruner: Any = None  # a node with _target_ (built in the job's process), or a pruner
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    storage_retry: float = STORAGE_RETRY  # seconds a lost storage connection is waited out
    devices: tuple[int, ...] = ()  # the pool each job takes devices_per_job from (none: ())
    devices_per_job: int = 1
    mlflow_timeout: float = DEFAULT_TIMEOUT  # seconds MLflow calls may hold a job, in total
    driver_pid: int = field(default_factory=os.getpid)
    driver_host: str = HOST
    budget: Budget = field(default_factory=Budget)  # no job starts once it is spent

    @property
    def storage_url(self) -> str:
        """The storage URL, resolved in this process."""
        return str(resolve_setting(self.storage))

    @property
    def mlflow_uri(self) -> str | None:
        """The tracking URI, resolved in this process (None: MLflow off)."""
        return resolve_setting(self.tracking_uri)

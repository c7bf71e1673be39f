"""The sweep's devices (``hydra.sweeper.devices``), checked and resolved before any job
(:func:`ivory_hydra.gpus.resolve_devices`), and checked against Hydra's own settings.

The jobs take their devices themselves (:mod:`ivory_hydra.job.devices`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ivory_hydra.core.devices import CUDA_VISIBLE_DEVICES, cuda_string, jobs_at_once
from ivory_hydra.sweeper.errors import SweepInputError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ivory_hydra.sweeper.settings import SweeperSettings

log = logging.getLogger(__name__)


def sweep_devices(settings: SweeperSettings, config: DictConfig) -> tuple[int, ...]:
    """The devices the sweep's jobs take (empty: none assigned).

    Raises :class:`SweepInputError` naming the setting for bad input.
    """
    from ivory_hydra.gpus import resolve_devices

    try:
        devices = resolve_devices(settings.devices, settings.devices_per_job, "hydra.sweeper.")
    except ValueError as error:
        raise SweepInputError(str(error)) from None
    if not devices:
        return ()
    _check_env_set(config)
    _note_parallel(devices, settings.devices_per_job, config)
    return devices


def _check_env_set(config: DictConfig) -> None:
    from omegaconf import OmegaConf

    env_set = OmegaConf.select(config, "hydra.job.env_set", default=None) or {}
    if CUDA_VISIBLE_DEVICES in env_set:
        raise SweepInputError(
            f"hydra.sweeper.devices: hydra.job.env_set.{CUDA_VISIBLE_DEVICES} is set too, and "
            "both would decide each job's devices: keep one of them"
        )


def _note_parallel(devices: tuple[int, ...], per_job: int, config: DictConfig) -> None:
    """Say once that the launcher runs more jobs at once than the devices allow."""
    from omegaconf import OmegaConf

    n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    at_once = jobs_at_once(devices, per_job)
    if isinstance(n_jobs, int) and n_jobs > at_once:
        log.info(
            f"hydra.sweeper.devices=[{cuda_string(devices)}] ({per_job} per job) runs "
            f"{at_once} jobs at once: of hydra.launcher.n_jobs={n_jobs}, the others wait "
            "for a free device"
        )

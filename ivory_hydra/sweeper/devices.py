"""The sweep's devices (``hydra.sweeper.devices``), checked and resolved before any job.

``auto`` asks NVML (``nvidia-ml-py``, the ``gpu`` extra) for this machine's
GPUs, without initializing CUDA; none found (or NVML missing) means no
assignment, said in one line. The jobs take their devices themselves
(:mod:`ivory_hydra.job.devices`).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.devices import (
    AUTO,
    CUDA_VISIBLE_DEVICES,
    check_devices,
    check_per_job,
    cuda_string,
    jobs_at_once,
    visible_ids,
)
from ivory_hydra.sweeper.errors import SweepInputError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from ivory_hydra.sweeper.settings import SweeperSettings

log = logging.getLogger(__name__)


def nvml_gpus() -> tuple[tuple[int, ...], str]:
    """The GPUs NVML reports (within ``CUDA_VISIBLE_DEVICES`` if it lists ids), or
    nothing and why."""
    try:
        import pynvml
    except ImportError:
        return (), "nvidia-ml-py is not installed (pip install 'ivory-hydra[gpu]')"
    try:
        pynvml.nvmlInit()
        try:
            count = pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as error:
        return (), f"NVML found no GPU ({error})"
    ids = visible_ids(count, os.environ.get(CUDA_VISIBLE_DEVICES))
    return ids, "" if ids else f"NVML found {count} GPUs, none in {CUDA_VISIBLE_DEVICES}"


def sweep_devices(settings: SweeperSettings, config: DictConfig) -> tuple[int, ...]:
    """The devices the sweep's jobs take (empty: none assigned).

    Raises :class:`SweepInputError` naming the setting for bad input.
    """
    try:
        devices: Any = check_devices(settings.devices)
        if devices == AUTO:
            devices, reason = nvml_gpus()
            if not devices:
                log.warning(f"hydra.sweeper.devices=auto: {reason}: no devices are assigned")
        check_per_job(settings.devices_per_job, devices or None)
    except ValueError as error:
        raise SweepInputError(f"hydra.sweeper.{error}") from None
    if not devices:
        return ()
    _check_env_set(config)
    _note_parallel(devices, settings.devices_per_job, config)
    return tuple(devices)


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

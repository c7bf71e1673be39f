"""The devices a sweep or task assigns, resolved for both front ends: ``auto`` asks NVML.

NVML (``nvidia-ml-py``, the ``gpu`` extra) lists this machine's GPUs without
initializing CUDA. When it is missing or finds none, ``auto`` assigns nothing,
and one line says so.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ivory_hydra.core.devices import (
    AUTO,
    CUDA_VISIBLE_DEVICES,
    check_devices,
    check_per_job,
    visible_ids,
)

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


def resolve_devices(devices: Any, per_job: Any, prefix: str = "") -> tuple[int, ...]:
    """The devices that jobs take ``per_job`` at a time (empty: none assigned).

    Raises ``ValueError("<prefix><setting>: ...")`` for bad input; ``prefix``
    is how the front end names its settings (``hydra.sweeper.``).

    >>> resolve_devices([1, 0], 2), resolve_devices(None, 1)
    ((1, 0), ())
    >>> resolve_devices([0], 2, "hydra.sweeper.")
    Traceback (most recent call last):
    ...
    ValueError: hydra.sweeper.devices_per_job: 2 is more than the 1 devices in [0]
    """
    try:
        checked: Any = check_devices(devices)
        if checked == AUTO:
            checked, reason = nvml_gpus()
            if not checked:
                log.warning(f"{prefix}devices=auto: {reason}: no devices are assigned")
        check_per_job(per_job, checked or None)
    except ValueError as error:
        raise ValueError(f"{prefix}{error}") from None
    return tuple(checked or ())

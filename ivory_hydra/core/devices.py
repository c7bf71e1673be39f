"""Devices (GPUs) per job: the setting, the choice among free devices, CUDA's string.

Pure. A sweep's ``devices`` is a list of device ids, ``auto`` (the GPUs NVML
reports) or null; each job holds ``devices_per_job`` of them while it runs,
and its process sees them as ``CUDA_VISIBLE_DEVICES``. Errors are
``ValueError("<setting>: <message>")``, so that a front end can name its own
setting (``hydra.sweeper.devices``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

#: The value of ``devices`` that asks NVML for the machine's GPUs.
AUTO = "auto"
#: What CUDA reads, once per process, to know which devices a process sees.
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
#: How CUDA numbers devices; ``PCI_BUS_ID`` is the order of nvidia-smi and NVML.
CUDA_DEVICE_ORDER = "CUDA_DEVICE_ORDER"


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_devices(devices: Any) -> tuple[int, ...] | str | None:
    """The ``devices`` setting checked: a tuple of ids, ``"auto"`` or None.

    >>> check_devices([0, 1]), check_devices("auto"), check_devices(None)
    ((0, 1), 'auto', None)
    >>> check_devices([0, 1, 0])
    Traceback (most recent call last):
    ...
    ValueError: devices: device 0 is listed twice in [0, 1, 0]
    >>> check_devices([0, -1])
    Traceback (most recent call last):
    ...
    ValueError: devices: -1 is not a device id (an int >= 0, as nvidia-smi numbers GPUs)
    >>> check_devices(["a"])
    Traceback (most recent call last):
    ...
    ValueError: devices: 'a' is not a device id (an int >= 0, as nvidia-smi numbers GPUs)
    >>> check_devices(2)
    Traceback (most recent call last):
    ...
    ValueError: devices: give a list of device ids ([0,1]), auto or null, not 2
    >>> check_devices([])
    Traceback (most recent call last):
    ...
    ValueError: devices: an empty list; give device ids ([0,1]), auto, or null for none
    """
    if devices is None or devices == AUTO:
        return devices
    if isinstance(devices, (str, bytes)) or not isinstance(devices, Iterable):
        raise ValueError(f"devices: give a list of device ids ([0,1]), auto or null, not {devices}")
    ids = list(devices)
    if not ids:
        raise ValueError("devices: an empty list; give device ids ([0,1]), auto, or null for none")
    for value in ids:
        if not _is_id(value):
            raise ValueError(
                f"devices: {value!r} is not a device id (an int >= 0, as nvidia-smi numbers GPUs)"
            )
    for value in ids:
        if ids.count(value) > 1:
            raise ValueError(f"devices: device {value} is listed twice in {ids}")
    return tuple(ids)


def check_per_job(per_job: Any, pool: Sequence[int] | None) -> int:
    """``devices_per_job`` checked against the pool (None: no pool, only its sign).

    >>> check_per_job(2, (0, 1, 2, 3)), check_per_job(3, None)
    (2, 3)
    >>> check_per_job(0, None)
    Traceback (most recent call last):
    ...
    ValueError: devices_per_job: must be an int >= 1, not 0
    >>> check_per_job(3, (0, 1))
    Traceback (most recent call last):
    ...
    ValueError: devices_per_job: 3 is more than the 2 devices in [0, 1]
    """
    if not _is_id(per_job) or per_job < 1:
        raise ValueError(f"devices_per_job: must be an int >= 1, not {per_job!r}")
    if pool is not None and per_job > len(pool):
        raise ValueError(
            f"devices_per_job: {per_job} is more than the {len(pool)} devices in {list(pool)}"
        )
    return int(per_job)


def visible_ids(found: int, visible: str | None) -> tuple[int, ...]:
    """The ids of ``found`` GPUs, restricted to a ``CUDA_VISIBLE_DEVICES`` of ids if set.

    >>> visible_ids(4, None), visible_ids(4, "2,3"), visible_ids(4, "1, 7"), visible_ids(2, "")
    ((0, 1, 2, 3), (2, 3), (1,), ())
    >>> visible_ids(2, "GPU-8f1c")  # UUIDs: not ids, so every GPU
    (0, 1)
    """
    every = tuple(range(found))
    if visible is None:
        return every
    parts = [p.strip() for p in visible.split(",") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return every
    return tuple(i for i in dict.fromkeys(int(p) for p in parts) if i < found)


def cuda_string(ids: Sequence[int]) -> str:
    """Devices as ``CUDA_VISIBLE_DEVICES`` reads them.

    >>> cuda_string((2, 0))
    '2,0'
    """
    return ",".join(str(i) for i in ids)


def jobs_at_once(pool: Sequence[int], per_job: int) -> int:
    """How many jobs the pool lets run at the same time.

    >>> jobs_at_once((0, 1, 2, 3, 4), 2)
    2
    """
    return len(pool) // per_job


def choose(
    pool: Sequence[int],
    free: Iterable[int],
    count: int,
    last: Sequence[int] = (),
    pinned: bool = False,
) -> tuple[int, ...] | None:
    """Which free devices a job takes: those its process held last first, then the
    pool's order; None when too few are free. ``pinned``: only the last ones will do
    (CUDA already read them in this process).

    >>> choose((0, 1, 2, 3), {1, 2, 3}, 2, last=(3,))
    (3, 1)
    >>> choose((0, 1), {1}, 2) is None
    True
    >>> choose((0, 1), {0, 1}, 1, last=(1,), pinned=True), choose((0, 1), {0}, 1, (1,), True)
    ((1,), None)
    """
    free = set(free)
    if pinned and last:
        return tuple(last) if len(last) == count and free.issuperset(last) else None
    order = [*(i for i in last if i in pool), *(i for i in pool if i not in last)]
    picked = tuple(i for i in order if i in free)[:count]
    return picked if len(picked) == count else None

"""What the sweep hands back to Hydra: every job's ``JobReturn``, with its configs kept on disk.

A ``JobReturn`` holds two full configs of its job (``cfg`` and ``hydra_cfg``,
about 100 KB together), so a sweep that keeps every one grows by that much per
job: 1 GB for 10,000 jobs. Each job also saved both configs in its output
folder (``.hydra/config.yaml`` and ``hydra.yaml``). Once its batch is read, a
job's return keeps only the paths and reads the configs back when they are
asked for, so a long sweep's memory stays flat. A return whose files cannot
be read (``hydra.output_subdir=null``, a job on another machine) is kept whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn

from ivory_hydra._compat import copy_job_return

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONFIG_FILES = {"cfg": "config.yaml", "hydra_cfg": "hydra.yaml"}


def _load(folder: Path, name: str) -> DictConfig:
    from omegaconf import OmegaConf

    loaded = OmegaConf.load(folder / name)
    OmegaConf.set_struct(loaded, True)  # as Hydra composed it
    return loaded  # type: ignore[return-value]


class _SavedConfig:
    """A ``JobReturn`` field read from the job's saved config file on each access."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, result: Any, owner: type | None = None) -> Any:
        if result is None:
            return self
        return _load(result._folder, CONFIG_FILES[self.name])

    def __set__(self, result: Any, value: Any) -> None:
        raise AttributeError(f"a finished job's {self.name} is read from its folder")


class StoredJobReturn(JobReturn):
    """A ``JobReturn`` whose ``cfg`` and ``hydra_cfg`` are read from the job's folder."""

    _folder: Path
    cfg = _SavedConfig()  # type: ignore[assignment]
    hydra_cfg = _SavedConfig()  # type: ignore[assignment]


def kept_on_disk(result: JobReturn) -> JobReturn:
    """``result`` without its configs in memory, when its folder holds them."""
    hydra_cfg = result.hydra_cfg
    if hydra_cfg is None:
        return result
    output_dir = hydra_cfg.hydra.runtime.get("output_dir")
    subdir = hydra_cfg.hydra.get("output_subdir")
    if output_dir is None or subdir is None:
        return result
    folder = Path(output_dir, str(subdir))
    if not all((folder / name).is_file() for name in CONFIG_FILES.values()):
        return result
    slim = copy_job_return(result, StoredJobReturn, leave_out=CONFIG_FILES)
    slim._folder = folder
    return slim

"""Ivory's multiple runs for Hydra, Optuna and MLflow.

>>> import ivory_hydra as ivory
>>> list(ivory.Range("3-7-2"))
[3, 5, 7]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["Client", "Range", "Run", "Task", "create_client", "trial"]

if TYPE_CHECKING:
    from ivory_hydra.core.ranges import Range
    from ivory_hydra.job.trial import trial
    from ivory_hydra.task import Client, Run, Task, create_client

_LAZY = {
    "Range": "ivory_hydra.core.ranges",
    "Client": "ivory_hydra.task",
    "Run": "ivory_hydra.task",
    "Task": "ivory_hydra.task",
    "create_client": "ivory_hydra.task",
    "trial": "ivory_hydra.job.trial",
}


def __getattr__(name: str) -> Any:
    """Import the public names on first use, so that Hydra's plugin scan stays cheap."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ivory_hydra' has no attribute {name!r}")

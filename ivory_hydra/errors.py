"""Errors of the engine and the stores, for both front ends (no Hydra here).

The sweeper shows them as Hydra's compact errors; the task API raises them.
"""

from __future__ import annotations


class IvoryError(Exception):
    """Base class of ivory-hydra's own errors."""


class StoreError(IvoryError, ValueError):
    """A store (Optuna storage or MLflow tracking store) cannot be used.

    The message names the setting and shows the URL with its password hidden.
    """


class SweepBusyError(IvoryError):
    """Another live process drives this sweep; nothing was started or written."""


class StorageUnavailableError(IvoryError):
    """The Optuna storage's database stayed unreachable for the whole ``storage_retry`` bound.

    Its message is one line that names the storage (password hidden) and says
    that rerunning the same command resumes: what was recorded stays recorded.
    """

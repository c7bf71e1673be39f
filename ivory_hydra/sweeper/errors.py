"""Errors the sweeper shows to users: Hydra prints their message, not a stack trace."""

from __future__ import annotations

from hydra.errors import CompactHydraException


class SweepInputError(CompactHydraException, ValueError):
    """Bad sweep input, found before any job starts and before anything is written."""


class SweepDefinitionError(SweepInputError):
    """A sweep override that cannot be turned into values (e.g. a malformed range)."""


class InvalidOverrideError(SweepInputError):
    """An override that no job config accepts (``param``: the param it sets, if known)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class SweepFailedError(CompactHydraException):
    """Some jobs of the sweep failed; the others finished and were recorded."""

"""Heartbeats kept beside a storage, overwritten in place (interim: in the ledger)."""

from __future__ import annotations

import abc
import functools
from collections.abc import Iterator, Mapping
from typing import Any

from ivory_hydra.stores.ledger import Ledger, ledger_for


class Beats(abc.ABC):
    """The latest liveness record of each owner (a worker, a lease, a trial's job)."""

    @abc.abstractmethod
    def write(self, key: str, record: Mapping[str, Any]) -> None:
        """Replace the record at ``key``."""

    @abc.abstractmethod
    def read(self, key: str) -> dict[str, Any] | None:
        """The record at ``key``, or None."""

    @abc.abstractmethod
    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record whose key starts with ``prefix``."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Forget the record at ``key``."""


class LedgerBeats(Beats):
    """Beats as ledger values."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def write(self, key: str, record: Mapping[str, Any]) -> None:
        for _ in range(20):
            if self.ledger.compare_and_set(key, self.ledger.get(key), dict(record)):
                return

    def read(self, key: str) -> dict[str, Any] | None:
        found = self.ledger.get(key)
        return dict(found) if isinstance(found, Mapping) else None

    def items(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, value in self.ledger.items(prefix):
            if isinstance(value, Mapping):
                yield key, dict(value)

    def delete(self, key: str) -> None:
        for _ in range(20):
            current = self.ledger.get(key)
            if current is None or self.ledger.compare_and_set(key, current, None):
                return


@functools.lru_cache(maxsize=8)
def beats_for(url: str) -> Beats:
    """The beats kept beside the storage at ``url`` (one board per process)."""
    return LedgerBeats(ledger_for(url))

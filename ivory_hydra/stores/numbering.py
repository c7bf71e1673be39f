"""Run and task numbers, counted per experiment across processes and tasks.

``run#N`` and ``task#K`` continue within an experiment, as in Ivory, in every
process that shares a storage. The counts live in the storage's ledger, so
they need no bookkeeping study (optuna-dashboard lists only sweeps and tasks).
"""

from __future__ import annotations

from ivory_hydra.stores.format import Keys
from ivory_hydra.stores.ledger import Ledger

KINDS = ("run", "task")


def allocate(ledger: Ledger, experiment: str, kind: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive ``kind`` numbers of ``experiment``; return the first.

    >>> from ivory_hydra.stores.ledger import JournalLedger
    >>> import tempfile, os
    >>> ledger = JournalLedger(os.path.join(tempfile.mkdtemp(), "j.ivory"))
    >>> allocate(ledger, "torch", "run", 3), allocate(ledger, "torch", "run")
    (0, 3)
    >>> allocate(ledger, "torch", "task")
    0
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: use 'run' or 'task'")
    if count < 1:
        raise ValueError(f"count must be positive, not {count}")
    return ledger.add(Keys.numbers(experiment, kind), count)

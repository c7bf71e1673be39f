"""ivory-hydra's own tables in a storage's database, beside Optuna's.

* ``ivory_hydra_ledger``: atomic numbers and compare-and-set values
  (:mod:`ivory_hydra.stores.ledger`);
* ``ivory_hydra_beats``: liveness records, each overwritten in place
  (:mod:`ivory_hydra.stores.beats`).

``import ivory_hydra.stores.tables`` does not import SQLAlchemy.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

LEDGER_TABLE = "ivory_hydra_ledger"
BEATS_TABLE = "ivory_hydra_beats"


@functools.lru_cache(maxsize=1)
def _metadata() -> Any:
    from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

    metadata = MetaData()
    Table(
        LEDGER_TABLE,
        metadata,
        Column("key", String(512), primary_key=True),
        Column("number", BigInteger, nullable=False, default=0),
        Column("value", Text, nullable=True),
    )
    Table(
        BEATS_TABLE,
        metadata,
        Column("key", String(512), primary_key=True),
        Column("record", Text, nullable=False),
    )
    return metadata


def schema_digest() -> str:
    """A short digest of these tables' columns: it changes when they change.

    >>> len(schema_digest())
    8
    """
    import hashlib

    columns = [
        (table.name, column.name, str(column.type), column.primary_key, column.nullable)
        for table in _metadata().sorted_tables
        for column in table.columns
    ]
    return hashlib.sha256(repr(columns).encode()).hexdigest()[:8]


def ledger_table() -> Any:
    """The ledger's table: ``key``, ``number``, ``value`` (JSON text or NULL)."""
    return _metadata().tables[LEDGER_TABLE]


def beats_table() -> Any:
    """The beats' table: ``key``, ``record`` (JSON text)."""
    return _metadata().tables[BEATS_TABLE]


def create_tables(engine: Engine) -> None:
    """Create ivory-hydra's tables in a database where they are missing.

    Processes that meet a fresh database together race to create them; the
    losers find them made.
    """
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    metadata = _metadata()
    try:
        metadata.create_all(engine, checkfirst=True)
    except SQLAlchemyError:
        names = set(inspect(engine).get_table_names())
        if not set(metadata.tables) <= names:
            raise

"""A study's user attributes read from Optuna's SQLite file with Python's own ``sqlite3``.

A finished sweep run again only reads its study's summary and stops: read this
way, that costs milliseconds, where opening the file as Optuna's storage first
imports SQLAlchemy, Optuna's table models and alembic (about half a second).
Only ``studies`` and ``study_user_attributes`` are read, two tables whose
columns Optuna has kept since its first schema; anything else (a file that is
not Optuna's, or a study still to run) is left to Optuna.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any


class NotReadable(LookupError):
    """The file does not hold Optuna's tables as this module reads them."""


def study_user_attrs(path: Path, name: str) -> dict[str, Any] | None:
    """The user attributes of study ``name`` in Optuna's SQLite file ``path`` (None: no
    such study); raises :class:`NotReadable` for a file this cannot read. Writes nothing.

    >>> import optuna, tempfile
    >>> path = Path(tempfile.mkdtemp()) / "optuna.db"
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> study = optuna.create_study(storage=f"sqlite:///{path}", study_name="s")
    >>> study.set_user_attr("ivory:summary", {"finished": True})
    >>> study_user_attrs(path, "s"), study_user_attrs(path, "t")
    ({'ivory:summary': {'finished': True}}, None)
    """
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=60)) as db:
            found = db.execute(
                "SELECT study_id FROM studies WHERE study_name = ?", (name,)
            ).fetchone()
            if found is None:
                return None
            rows = db.execute(
                "SELECT key, value_json FROM study_user_attributes WHERE study_id = ?", found
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}
    except (sqlite3.Error, ValueError, TypeError) as error:
        raise NotReadable(f"{path}: {error}") from None

"""What the storage holds of a sweep: its study, checked to be this sweep's.

Read before anything is written: a study of a stored format this version cannot
read, or one that holds another sweep, is refused here. A missing local store
is not touched (nor created).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.redact import redact_url
from ivory_hydra.errors import StoreError
from ivory_hydra.stores.format import StudyAttr
from ivory_hydra.sweeper.errors import SweepInputError

if TYPE_CHECKING:
    from ivory_hydra.stores.study import Study


def stored_state(
    url: str, study_name: str, identity: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, bool]:
    """The summary of this sweep's last run, if its study exists, and whether
    MLflow was brought in line with it.

    A study holds one sweep: finding another definition in it is an error, as
    is a study of a stored format this version cannot read. A study can exist
    only where the storage exists, so a fresh folder is not touched.
    """

    found = study_attrs(url, study_name)
    attrs = found or {}
    check_stored(url, study_name, attrs, identity)
    if found is None:
        return None, False
    summary = attrs.get(StudyAttr.SUMMARY)
    synced = attrs.get(StudyAttr.MIRROR_SYNCED) is True
    return (dict(summary) if isinstance(summary, Mapping) else None), synced


def check_stored(
    url: str, study_name: str, attrs: Mapping[str, Any], identity: Mapping[str, Any]
) -> None:
    """Refuse a study of a stored format this version cannot read, or one that holds
    another sweep (its attributes are ``attrs``)."""
    from ivory_hydra.stores.study import check_format

    try:
        check_format(study_name, attrs)
    except StoreError as error:
        raise SweepInputError(f"hydra.sweeper.storage={redact_url(url)}: {error}") from None
    stored = attrs.get(StudyAttr.DEFINITION)
    wanted = json.loads(json.dumps(identity, default=str))
    if stored is not None and stored != wanted:
        changed = sorted(
            key
            for key in {**stored, **wanted}
            if key != "params" and stored.get(key) != wanted.get(key)
        )
        old, new = stored.get("params", {}), wanted.get("params", {})
        changed += [f"param {k}" for k in sorted({**old, **new}) if old.get(k) != new.get(k)]
        raise SweepInputError(
            f"hydra.sweeper.study_name={study_name}: this study holds another sweep "
            f"(it differs in {', '.join(changed)}). Run that sweep's own command to "
            "resume it, or choose a new study_name."
        )


def study_attrs(url: str, name: str) -> dict[str, Any] | None:
    """The user attributes of study ``name``, if it exists (see :func:`find_study`); from
    an SQLite file, read without opening it as Optuna's storage (a finished sweep's rerun
    reads nothing else)."""
    from ivory_hydra.stores.sqlite_files import sqlite_file
    from ivory_hydra.stores.sqlite_peek import NotReadable, study_user_attrs

    local = sqlite_file(url)
    if local is not None and local.is_file():
        try:
            return study_user_attrs(local, name)
        except NotReadable:
            pass  # Optuna says what is wrong with it
    study = find_study(url, name)
    return None if study is None else study.user_attrs


def find_study(url: str, name: str) -> Study | None:
    """The study ``name`` if it exists; a storage that is a missing local file is not
    touched (nor created)."""
    from pathlib import Path

    from ivory_hydra.stores.optuna_storage import is_journal, open_storage
    from ivory_hydra.stores.sqlite_files import sqlite_file
    from ivory_hydra.stores.study import Study

    local = Path(url) if is_journal(url) else sqlite_file(url)
    if local is not None and not local.exists():
        return None
    try:
        return Study.find(open_storage(url), name)
    except StoreError as error:
        raise SweepInputError(f"hydra.sweeper.storage={redact_url(url)}: {error}") from None

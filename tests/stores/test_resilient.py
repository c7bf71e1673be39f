"""The database storage that waits out a lost connection, and what it answers cheaper
than Optuna's ``RDBStorage``."""

from __future__ import annotations

import pytest
import sqlalchemy

from ivory_hydra.core.objectives import Objectives
from ivory_hydra.stores.distributions import distributions_for
from ivory_hydra.stores.optuna_storage import open_storage, storage_url
from ivory_hydra.stores.resilient import ResilientRDBStorage
from ivory_hydra.stores.study import Study, TrialSpec


def test_a_trials_number_is_one_query_of_its_row(tmp_path):
    storage = open_storage(storage_url(None, tmp_path))
    assert isinstance(storage, ResilientRDBStorage)
    study = Study.open(storage, "s", Objectives.of("minimize"))
    dists = distributions_for({"a": [1, 2, 3]})
    created = study.create_trials([TrialSpec({"a": a}, dists, {"u": a}) for a in (1, 2, 3)])
    assert [number for _, number in created] == [0, 1, 2]
    queries: list[str] = []
    sqlalchemy.event.listen(
        storage.engine, "before_cursor_execute", lambda *a: queries.append(a[2])
    )
    assert storage.get_trial_number_from_id(created[2][0]) == 2
    assert len(queries) == 1 and "trial_params" not in queries[0]
    with pytest.raises(KeyError, match="No trial with trial_id 99"):
        storage.get_trial_number_from_id(99)

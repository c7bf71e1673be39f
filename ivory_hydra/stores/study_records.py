"""Coordination records kept in one bookkeeping study, through ``BaseStorage`` calls only.

The fallback for Optuna's bare gRPC proxy (``run_grpc_proxy_server``, which
serves Optuna's storage service and nothing else): the ledger and the beats
board are kept in a study of their own, :data:`RECORDS_STUDY`, which
optuna-dashboard lists beside the sweeps (``python -m ivory_hydra.proxy``
keeps them in ivory-hydra's own tables instead).

* :class:`StudyLog` is an append-only log for the ledger's replay
  (:class:`~ivory_hydra.stores.ledger.JournalLedger`): each record is one
  trial, made with ``create_new_trial(template_trial=...)``, which numbers
  trials atomically and in commit order within a study (Optuna locks the
  study's row first). Replaying the trials in number order is replaying the
  log, exactly as a journal is replayed.
* The beats board keeps each record as a study system attribute (last writer
  wins, as a beat needs): :class:`~ivory_hydra.stores.beats.StudyBeats`.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

#: The bookkeeping study's name.
RECORDS_STUDY = "ivory-hydra-records"
#: The trial system attribute that holds one ledger record.
RECORD_ATTR = "ivory:record"
#: Study system attributes that hold beats start so (the rest is the key).
BEAT_PREFIX = "ivory:beat:"


def records_study_id(storage: BaseStorage) -> int:
    """The id of the bookkeeping study, made by whoever comes first."""
    from optuna.exceptions import DuplicatedStudyError
    from optuna.study import StudyDirection

    try:
        return storage.get_study_id_from_name(RECORDS_STUDY)
    except KeyError:
        pass
    try:
        return storage.create_new_study([StudyDirection.MINIMIZE], RECORDS_STUDY)
    except DuplicatedStudyError:
        return storage.get_study_id_from_name(RECORDS_STUDY)


class StudyLog:
    """An append-only log of JSON records, one trial each, in trial-number order.

    It has the two methods of Optuna's journal backends that the ledger's
    replay uses: ``read_logs`` and ``append_logs``.
    """

    def __init__(self, storage: BaseStorage) -> None:
        self.storage = storage
        self.study_id = records_study_id(storage)

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """The records from number ``log_number_from`` on, up to the first one not
        yet visible (a record is never seen before those numbered before it)."""
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        found = []
        for trial in trials[log_number_from:]:
            if trial.number != log_number_from + len(found):
                break
            found.append(trial.system_attrs[RECORD_ATTR])
        return found

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        from optuna.trial import FrozenTrial, TrialState

        now = datetime.datetime.now()
        for record in logs:
            template = FrozenTrial(
                number=-1,
                state=TrialState.COMPLETE,
                value=0.0,
                datetime_start=now,
                datetime_complete=now,
                params={},
                distributions={},
                user_attrs={},
                system_attrs={RECORD_ATTR: record},
                intermediate_values={},
                trial_id=-1,
            )
            self.storage.create_new_trial(self.study_id, template_trial=template)

"""The Optuna side: storages, studies, trials, and the experiment-wide numbering.

Every task (or sweep) is one study and every run one trial. Run and task numbers
are shared by all the studies of an experiment; they come from a small ledger
study kept in the same storage, so they continue across processes on any
Optuna backend (SQLite, PostgreSQL, MySQL or a journal file).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivory_hydra.distributions import trial_param

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

DEFAULT_FILENAME = "optuna.db"
LEDGER_PREFIX = "ivory-hydra.numbers:"
TOTALS_ATTR = "totals"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def storage_url(storage: str | None, directory: str | Path = ".") -> str:
    """Resolve what the user gave as ``storage`` into a URL or a journal path.

    None means the embedded default, an SQLite file in ``directory``. A bare
    path ending in ``.db``/``.sqlite`` is an SQLite file; any other bare path
    is an Optuna journal file.

    >>> storage_url(None, "/tmp/x")
    'sqlite:////tmp/x/optuna.db'
    >>> storage_url("/tmp/runs.db")
    'sqlite:////tmp/runs.db'
    >>> storage_url("postgresql://u:p@127.0.0.1/db")
    'postgresql://u:p@127.0.0.1/db'
    >>> storage_url("/tmp/journal.log")
    '/tmp/journal.log'
    """
    if storage is None or storage == "":
        return f"sqlite:///{(Path(directory) / DEFAULT_FILENAME).absolute()}"
    if "://" in storage:
        return storage
    path = Path(storage).absolute()
    if path.suffix in SQLITE_SUFFIXES:
        return f"sqlite:///{path}"
    return str(path)


def is_journal(url: str) -> bool:
    """True when ``url`` names an Optuna journal file rather than a database.

    >>> is_journal("/tmp/journal.log"), is_journal("sqlite:///x.db")
    (True, False)
    """
    return "://" not in url


def dashboard_command(url: str) -> str:
    """The command that opens optuna-dashboard on a storage.

    >>> dashboard_command("sqlite:////tmp/optuna.db")
    'optuna-dashboard sqlite:////tmp/optuna.db'
    """
    return f"optuna-dashboard {url}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (optuna-dashboard) work beside the sweep, and
    # synchronous=NORMAL drops an fsync per transaction, which is most of the
    # cost of a write.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@functools.lru_cache(maxsize=8)
def open_storage(url: str) -> BaseStorage:
    """Open (and cache per process) the Optuna storage behind ``url``.

    A storage that cannot be opened raises ``ValueError`` with the reason, and
    with any password in the URL hidden.
    """
    try:
        return _open_storage(url)
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds
        from ivory_hydra.redact import redact_text

        raise ValueError(
            f"cannot open this Optuna storage: {type(error).__name__}: {redact_text(str(error))}"
        ) from None


def _open_storage(url: str) -> BaseStorage:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    if not url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url)
    Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    from sqlalchemy import event

    event.listen(storage.engine, "connect", _sqlite_pragmas)
    storage.engine.dispose()  # later connections get the pragmas
    return storage


@dataclass
class StudyHandle:
    """One study in a storage, with the few operations a task needs."""

    storage: BaseStorage
    study_id: int
    name: str
    created: bool

    @property
    def user_attrs(self) -> dict[str, Any]:
        """The study's user attributes (sweep definition, task name, decisions)."""
        return self.storage.get_study_user_attrs(self.study_id)

    def set_attr(self, key: str, value: Any) -> None:
        """Set one study user attribute."""
        self.storage.set_study_user_attr(self.study_id, key, value)

    def trials(self) -> list[FrozenTrial]:
        """Every trial of the study, oldest first."""
        return self.storage.get_all_trials(self.study_id, deepcopy=False)

    def start_trial(
        self,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        user_attrs: Mapping[str, Any],
    ) -> tuple[int, int]:
        """Create a RUNNING trial holding its params; return (trial id, number)."""
        import datetime

        from optuna.trial import FrozenTrial, TrialState

        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.datetime.now(),
            datetime_complete=None,
            params={k: trial_param(v, distributions[k]) for k, v in params.items()},
            distributions=dict(distributions),
            user_attrs=dict(user_attrs),
            system_attrs={},
            intermediate_values={},
            trial_id=-1,
        )
        trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
        return trial_id, self.storage.get_trial_number_from_id(trial_id)

    def finish_trial(
        self,
        trial_id: int,
        state: str,
        value: float | None,
        user_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Finish a trial as ``complete``, ``fail`` or ``pruned`` (finished, no score)."""
        from optuna.trial import TrialState

        for key, attr in (user_attrs or {}).items():
            self.storage.set_trial_user_attr(trial_id, key, attr)
        trial_state = {
            "complete": TrialState.COMPLETE,
            "fail": TrialState.FAIL,
            "pruned": TrialState.PRUNED,
        }[state]
        values = [value] if trial_state == TrialState.COMPLETE else None
        self.storage.set_trial_state_values(trial_id, trial_state, values)


def open_study(
    storage: BaseStorage,
    name: str,
    direction: str,
    metric_name: str | None = None,
) -> StudyHandle:
    """Load the study called ``name``, or create it with ``direction``.

    A study that exists with the other direction is an error, since Optuna
    cannot change it.
    """
    import optuna
    from optuna.study import StudyDirection

    wanted = StudyDirection.MINIMIZE if direction == "minimize" else StudyDirection.MAXIMIZE
    try:
        study_id = storage.get_study_id_from_name(name)
        created = False
    except KeyError:
        try:
            study_id = storage.create_new_study([wanted], name)
            created = True
            if metric_name:
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study = optuna.load_study(study_name=name, storage=storage)
                    study.set_metric_names([metric_name])
        except optuna.exceptions.DuplicatedStudyError:
            study_id = storage.get_study_id_from_name(name)
            created = False
    existing = storage.get_study_directions(study_id)
    if list(existing) != [wanted]:
        have = existing[0].name.lower()
        raise ValueError(
            f"study {name!r} already exists with direction {have!r}, not {direction!r}; "
            "choose another study_name"
        )
    return StudyHandle(storage, study_id, name, created)


def find_study(storage: BaseStorage, name: str) -> StudyHandle | None:
    """The study called ``name`` if it exists."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return StudyHandle(storage, study_id, name, False)


def allocate_numbers(storage: BaseStorage, experiment: str, kind: str, count: int) -> int:
    """Reserve ``count`` consecutive ``kind`` numbers ("run" or "task"); return the first.

    Each reservation is one trial of the experiment's ledger study, created
    with its count. Trial numbers are assigned atomically by the storage, so the
    first number is the sum of the counts reserved before it. Reading it costs
    one trial (the previous one caches the running totals), not the whole ledger.
    """
    import datetime

    import optuna
    from optuna.trial import FrozenTrial, TrialState

    if count < 1:
        raise ValueError(f"count must be positive, not {count}")
    name = LEDGER_PREFIX + experiment
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        try:
            study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)
            storage.set_study_user_attr(study_id, "ivory_hydra.role", "numbering ledger")
        except optuna.exceptions.DuplicatedStudyError:
            study_id = storage.get_study_id_from_name(name)
    template = FrozenTrial(
        number=-1,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=datetime.datetime.now(),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={"kind": kind, "count": count},
        system_attrs={},
        intermediate_values={},
        trial_id=-1,
    )
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    number = storage.get_trial_number_from_id(trial_id)
    totals = _totals_before(storage, study_id, number)
    first = totals.get(kind, 0)
    totals[kind] = first + count
    # A cache for the next allocation, so that it reads one trial, not all.
    storage.set_trial_user_attr(trial_id, TOTALS_ATTR, totals)
    storage.set_trial_state_values(trial_id, TrialState.COMPLETE, [float(count)])
    return first


def _totals_before(storage: BaseStorage, study_id: int, number: int) -> dict[str, int]:
    """How many numbers of each kind the ledger trials before ``number`` reserved.

    The previous trial caches the running totals. Without the cache (an
    allocation still in flight in another process), sum the counts instead:
    each trial's count is fixed as it is created, so the sum is always right.
    """
    if number == 0:
        return {}
    previous = storage.get_trial(
        storage.get_trial_id_from_study_id_trial_number(study_id, number - 1)
    )
    cached = previous.user_attrs.get(TOTALS_ATTR)
    if cached is not None:
        return {str(k): int(v) for k, v in cached.items()}
    totals: dict[str, int] = {}
    for trial in storage.get_all_trials(study_id, deepcopy=False):
        if trial.number < number:
            kind = str(trial.user_attrs.get("kind"))
            totals[kind] = totals.get(kind, 0) + int(trial.user_attrs.get("count", 0))
    return totals

"""A sweep's (or task's) Optuna study: its attributes and the trials it holds."""

from __future__ import annotations

import datetime
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ivory_hydra.errors import StoreError
from ivory_hydra.stores.distributions import trial_param
from ivory_hydra.stores.format import FORMAT_VERSION, READABLE_VERSIONS, StudyAttr

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, TrialState

    from ivory_hydra.core.objectives import Objectives


@dataclass(frozen=True)
class TrialSpec:
    """What a new trial holds before its job starts."""

    params: Mapping[str, Any]
    distributions: Mapping[str, BaseDistribution]
    user_attrs: Mapping[str, Any] = field(default_factory=dict)
    system_attrs: Mapping[str, Any] = field(default_factory=dict)
    intermediate_values: Mapping[int, float] = field(default_factory=dict)


@dataclass
class Study:
    """One study in a storage, with the few operations a sweep needs."""

    storage: BaseStorage
    study_id: int
    name: str
    created: bool = False

    @classmethod
    def open(cls, storage: BaseStorage, name: str, objectives: Objectives) -> Study:
        """Load the study called ``name``, or create it with the objectives' directions.

        A study that exists with other directions is an error, since Optuna
        cannot change them.
        """
        import optuna
        from optuna.study import StudyDirection

        directions = list(objectives.directions)
        wanted = [StudyDirection[d.upper()] for d in directions]
        study = cls.find(storage, name)
        if study is None:
            try:
                study = cls(storage, storage.create_new_study(wanted, name), name, True)
                if objectives.metrics:
                    study.name_metrics(list(objectives.metrics))
            except optuna.exceptions.DuplicatedStudyError:
                study = cls(storage, storage.get_study_id_from_name(name), name)
        existing = list(storage.get_study_directions(study.study_id))
        if existing != wanted:
            have = ", ".join(d.name.lower() for d in existing)
            raise ValueError(
                f"study {name!r} already exists with direction {have!r}, not "
                f"{', '.join(directions)!r}; choose another study_name"
            )
        return study

    @classmethod
    def find(cls, storage: BaseStorage, name: str) -> Study | None:
        """The study called ``name`` if it exists."""
        try:
            return cls(storage, storage.get_study_id_from_name(name), name)
        except KeyError:
            return None

    def name_metrics(self, names: list[str]) -> None:
        """Name the objectives, as optuna-dashboard shows them."""
        import warnings

        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.load_study(study_name=self.name, storage=self.storage).set_metric_names(names)

    @property
    def user_attrs(self) -> dict[str, Any]:
        """The study's user attributes (see :mod:`ivory_hydra.stores.format`)."""
        return self.storage.get_study_user_attrs(self.study_id)

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        """Set study user attributes."""
        for key, value in attrs.items():
            self.storage.set_study_user_attr(self.study_id, key, value)

    def trials(self, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        """The study's trials (those in ``states`` only, if given), oldest first."""
        return self.storage.get_all_trials(self.study_id, deepcopy=False, states=states)

    def create_trials(self, specs: Sequence[TrialSpec]) -> list[tuple[int, int]]:
        """Create WAITING trials, one per spec; return their (trial id, number) pairs.

        A WAITING trial has no start time: its job claims it when it starts
        (see :func:`ivory_hydra.stores.trials.claim`), which stamps the job's own.
        """
        from optuna.trial import FrozenTrial, TrialState

        created = []
        for spec in specs:
            template = FrozenTrial(
                number=-1,
                state=TrialState.WAITING,
                value=None,
                datetime_start=None,
                datetime_complete=None,
                params={k: trial_param(v, spec.distributions[k]) for k, v in spec.params.items()},
                distributions=dict(spec.distributions),
                user_attrs=dict(spec.user_attrs),
                system_attrs=dict(spec.system_attrs),
                intermediate_values=dict(spec.intermediate_values),
                trial_id=-1,
            )
            trial_id = self.storage.create_new_trial(self.study_id, template_trial=template)
            created.append((trial_id, self.storage.get_trial_number_from_id(trial_id)))
        return created

    def delete(self) -> None:
        """Delete the study and its trials."""
        self.storage.delete_study(self.study_id)


def check_format(name: str, attrs: Mapping[str, Any], *, created: bool = False) -> int:
    """The stored format version of a study (2 when unmarked); refuse a newer one.

    >>> check_format("s", {"format_version": 3}), check_format("s", {"task": "task#0"})
    (3, 2)
    >>> check_format("s", {"format_version": 9})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ivory_hydra.errors.StoreError: study 's' was written by a newer ivory-hydra ...
    """
    if created:
        return FORMAT_VERSION
    version = int(attrs.get(StudyAttr.FORMAT, 2))
    if version not in READABLE_VERSIONS:
        newer = version > FORMAT_VERSION
        raise StoreError(
            f"study {name!r} was written by "
            f"{'a newer' if newer else 'an older'} ivory-hydra (stored format {version}; "
            f"this one reads {READABLE_VERSIONS[0]} to {READABLE_VERSIONS[-1]}): "
            + ("upgrade ivory-hydra to open it" if newer else "open it with ivory-hydra 0.2")
        )
    return version


def now() -> datetime.datetime:
    """The local time, as Optuna stamps trials."""
    return datetime.datetime.now()

"""Optimize mode: an Optuna sampler fills in the swept values of each new trial.

The engine creates a WAITING trial for every run, as in the other modes; a
:class:`Sampling` then asks the study's sampler for its swept values, with
Optuna's own ``Trial`` and ``suggest_*`` calls, so that the job still claims
its trial (and its start time) when it starts. Samplers read the finished
trials from the storage, so several processes can optimize one study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ivory_hydra._compat import is_stop_outside_optimize, trial_of

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage
    from optuna.trial import Trial


def suggest(trial: Trial, name: str, distribution: BaseDistribution) -> Any:
    """Let the sampler pick a value of ``distribution`` for ``name``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(
            name, distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, list(distribution.choices))
    raise TypeError(f"param {name!r}: cannot sample a {type(distribution).__name__}")


class Sampling:
    """The sampler of one optimize sweep, over its search space."""

    def __init__(
        self,
        storage: BaseStorage,
        study_name: str,
        sampler: BaseSampler,
        space: Mapping[str, BaseDistribution],
        extend: Callable[[Trial], None] | None = None,
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.sampler = sampler
        self.space = dict(space)
        self.extend = extend

    def _study(self) -> Any:
        """The study as the sampler sees it now.

        A ``Study`` caches its trials until it asks for a new one; trials that
        jobs finished elsewhere since then must count, so each sample reads
        the study afresh (one cheap query on a cached RDB storage).
        """
        import optuna

        return optuna.load_study(
            study_name=self.study_name, storage=self.storage, sampler=self.sampler
        )

    def sample(self, trial_id: int, fixed: Mapping[str, Any]) -> dict[str, Any]:
        """Pick the swept values of a WAITING trial (they are stored in it too).

        ``fixed`` are the params the trial was created with; the values picked
        here are returned in the order the sampler picked them.
        """
        import optuna

        study = self._study()
        # Optuna caches an RDB storage's trials: reading the WAITING ones brings
        # in the one the engine just created.
        study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        trial = trial_of(study, trial_id)
        for name, distribution in self.space.items():
            suggest(trial, name, distribution)
        if self.extend is not None:
            self.extend(trial)
        return {k: v for k, v in trial.params.items() if k not in fixed}

    def after(self, trial_id: int) -> None:
        """Tell the sampler that a trial finished (some samplers keep state)."""
        frozen = self.storage.get_trial(trial_id)
        try:
            self.sampler.after_trial(self._study(), frozen, frozen.state, frozen.values)
        except RuntimeError as error:
            # GridSampler stops study.optimize() once its grid is done; here
            # n_trials bounds the sweep instead.
            if not is_stop_outside_optimize(error):
                raise

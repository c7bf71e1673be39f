"""Fail-fast checks of a sweep, without composing every job's config.

Hydra's BasicSweeper composes each job's config once up front and once more in
the launcher. Here, one composition of the first job gives a base config; each
other value override is then applied to a copy of it, the same way Hydra
applies overrides during composition (cheap: no files are read). Config group
values change the defaults tree, so each group value gets one composition.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ivory_hydra._compat import apply_overrides
from ivory_hydra.sweeper.errors import InvalidOverrideError
from ivory_hydra.sweeper.overrides import SweepParam

if TYPE_CHECKING:
    from hydra.core.config_loader import ConfigLoader
    from omegaconf import DictConfig


def validate_sweep(
    config_loader: ConfigLoader,
    config: DictConfig,
    params: Sequence[SweepParam],
) -> int:
    """Check that every override of the sweep can be applied; return the compositions made.

    The base is the config of every param at its first value; every other
    value is checked against it with only its own key changed.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import open_dict, read_write

    firsts = [p.override(p.values[0]) for p in params]
    try:
        base = _compose(config_loader, config, firsts)
    except InvalidOverrideError as error:
        culprit = _first_refused(config_loader, config, params, firsts)
        raise InvalidOverrideError(str(error), culprit) from None
    compositions = 1
    task_base = copy.deepcopy(base)
    with read_write(task_base), open_dict(task_base):
        del task_base["hydra"]
    parser = OverridesParser.create(config_loader=config_loader)
    for param in params:
        if param.delete or len(param.values) < 2:
            continue
        try:
            compositions += _check_values(
                config_loader, config, param, params, firsts, task_base, parser
            )
        except InvalidOverrideError as error:
            raise InvalidOverrideError(str(error), param.name) from None
    return compositions


def _check_values(
    config_loader: ConfigLoader,
    config: DictConfig,
    param: SweepParam,
    params: Sequence[SweepParam],
    firsts: list[str],
    task_base: DictConfig,
    parser: Any,
) -> int:
    """Check every value of ``param`` but its first; return the compositions made."""
    compositions = 0
    is_group = is_config_group(config_loader, param.name)
    for value in param.values[1:]:
        override_text = param.override(value)
        if is_group or param.name.startswith("hydra"):
            overrides = [
                override_text if q is param else o for o, q in zip(firsts, params, strict=True)
            ]
            _compose(config_loader, config, overrides)
            compositions += 1
            continue
        # The base already holds the first value, so an addition is checked
        # as a forced addition (what it is for every job but the first).
        check_text = (
            "+" + override_text
            if param.key.startswith("+") and not param.key.startswith("++")
            else override_text
        )
        [override] = parser.parse_overrides([check_text])
        candidate = copy.deepcopy(task_base)
        try:
            apply_overrides([override], candidate)
        except Exception as error:  # noqa: BLE001 - Hydra raises several kinds
            raise InvalidOverrideError(
                f"override {override_text!r} is not accepted by the job config: {error}"
            ) from None
    return compositions


def _first_refused(
    config_loader: ConfigLoader, config: DictConfig, params: Sequence[SweepParam], firsts: list[str]
) -> str | None:
    """The param whose first value makes the composition fail (on the error path only:
    one composition per param, with the first values up to it)."""
    for i, param in enumerate(params):
        try:
            _compose(config_loader, config, firsts[: i + 1])
        except InvalidOverrideError:
            return param.name
    return None


def is_config_group(config_loader: ConfigLoader, name: str) -> bool:
    """Whether ``name`` (``model``, ``db@backup``, ``hydra/launcher``) is a config group.

    Asked through the ``ConfigLoader`` interface: the groups under its parent.
    When the loader cannot tell, the name counts as a group (it is then composed).
    """
    parent, _, group = name.split("@")[0].rpartition("/")
    try:
        return group in config_loader.list_groups(parent)
    except Exception:  # noqa: BLE001 - a loader that cannot list: compose to be safe
        return True


def _compose(config_loader: ConfigLoader, config: DictConfig, overrides: list[str]) -> DictConfig:
    try:
        return config_loader.load_sweep_config(master_config=config, sweep_overrides=overrides)
    except Exception as error:  # noqa: BLE001 - Hydra raises several kinds
        raise InvalidOverrideError(
            f"overrides {' '.join(overrides)!r} are not accepted by the job config: {error}"
        ) from None

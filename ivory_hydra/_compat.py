"""Every private name of Hydra, Optuna or MLflow that ivory-hydra touches, in one place.

Each has a test (``tests/test_compat.py``) that fails with a clear message
when the dependency changes it. Prefer a public API wherever one does the job.
"""

from __future__ import annotations

from typing import Any


def apply_overrides(overrides: list[Any], config: Any) -> None:
    """Apply parsed value overrides to a config the way Hydra's composition does.

    Hydra: ``ConfigLoaderImpl._apply_overrides_to_config`` (no public
    equivalent; validation uses it to check a value without composing the
    whole config again).
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl._apply_overrides_to_config(overrides, config)


def element_text(element: Any) -> str:
    """An override element as override text, quoted as the user quoted it.

    Hydra: ``Override._get_value_element_as_str`` (the public
    ``get_value_element_as_str`` takes a whole override, not one element of a sweep).
    """
    from hydra.core.override_parser.types import Override

    return Override._get_value_element_as_str(element)


def element_value(element: Any) -> Any:
    """An override element as a plain Python value (quotes removed).

    Hydra: ``Override._convert_value``.
    """
    from hydra.core.override_parser.types import Override

    return Override._convert_value(element)


def override_element(override: Any) -> Any:
    """The parsed element of a non-sweep override, quotes kept (``Override._value``).

    The public ``Override.value()`` drops the quotes, which decide whether a
    value is an Ivory range.
    """
    return override._value


def job_exception(job_return: Any) -> BaseException | None:
    """The exception a failed Hydra job raised.

    Hydra: ``JobReturn._return_value`` (the public ``return_value`` re-raises it).
    """
    return job_return._return_value

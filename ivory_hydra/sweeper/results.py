"""The end of a sweep: ``results.yaml`` in the sweep folder."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def plain(value: Any) -> Any:
    """``value`` as plain YAML data (tuples to lists, odd objects to strings).

    >>> plain({"a": (1, 2.5), "b": None})
    {'a': [1, 2.5], 'b': None}
    >>> plain(object)
    "<class 'object'>"
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def write_results(path: Path, results: Mapping[str, Any]) -> Path:
    """Write ``results`` as YAML to ``path`` (atomically) and return the path."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(plain(results), sort_keys=False))
    tmp.replace(path)
    return path

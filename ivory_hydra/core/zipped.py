"""Zipped dimensions: one named sweep dimension whose rows set several keys at once.

``arch=zip(model=[resnet,vit], lr=[0.1,0.01])`` (the syntax of Hydra's
zipped-sweeps proposal) is one dimension named ``arch`` with two rows,
``model=resnet lr=0.1`` and ``model=vit lr=0.01``. A plan holds each row as one
value of the dimension (a :class:`Row`); a point's params hold the row's
members instead (:func:`flatten`), so the dimension's name never reaches a job.

Pure: values are opaque (the sweeper passes parsed overrides, tests plain values).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ivory_hydra.core.display import format_value

#: A dimension's name: a plain identifier (it is not a config key).
NAME = re.compile(r"[A-Za-z_]\w*")


class ZipError(ValueError):
    """A zipped dimension that cannot be swept; the message names the dimension."""

    def __init__(self, dimension: str, problem: str) -> None:
        self.dimension = dimension
        self.problem = problem
        super().__init__(f"zipped dimension {dimension!r}: {problem}")


@dataclass(frozen=True)
class Row:
    """One row of a zipped dimension: the ``index``-th value of every member.

    >>> row = Row("arch", 1, (("model", "vit"), ("lr", 0.01)))
    >>> row.label, row.as_dict()
    ('model=vit lr=0.01', {'model': 'vit', 'lr': 0.01})
    """

    dimension: str
    index: int
    members: tuple[tuple[str, Any], ...]
    text: tuple[str, ...] = ()  # each member value as written (default: formatted)

    @property
    def label(self) -> str:
        """The row as one line, ``model=vit lr=0.01`` (optimize mode's categorical choice)."""
        texts = self.text or tuple(format_value(v) for _, v in self.members)
        return " ".join(f"{k}={t}" for (k, _), t in zip(self.members, texts, strict=True))

    def as_dict(self) -> dict[str, Any]:
        """The members and their values."""
        return dict(self.members)

    def keys(self) -> list[str]:
        """The members' names."""
        return [k for k, _ in self.members]


def flatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params with each row replaced by its members, in place.

    >>> row = Row("arch", 0, (("model", "resnet"), ("lr", 0.1)))
    >>> flatten({"seed": 1, "arch": row, "bs": 32})
    {'seed': 1, 'model': 'resnet', 'lr': 0.1, 'bs': 32}
    """
    if not any(isinstance(v, Row) for v in params.values()):
        return dict(params)
    flat: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, Row):
            flat.update(value.members)
        else:
            flat[name] = value
    return flat


def rows_of(
    dimension: str,
    members: Sequence[tuple[str, Sequence[Any]]],
    text: Callable[[Any], str] = format_value,
) -> list[Row]:
    """The rows of a zipped dimension: row ``i`` pairs the ``i``-th value of every member.

    Raises :class:`ZipError` (naming the dimension) for an empty zip, a zip of one
    member, a member given twice, a member without values, or members of unequal
    lengths.

    >>> [r.label for r in rows_of("arch", [("model", ["resnet", "vit"]), ("lr", [0.1, 0.01])])]
    ['model=resnet lr=0.1', 'model=vit lr=0.01']
    >>> rows_of("arch", [("model", ["resnet", "vit"]), ("lr", [0.1, 0.01, 0.001])])
    Traceback (most recent call last):
    ...
    ivory_hydra.core.zipped.ZipError: zipped dimension 'arch': its members have different \
lengths: model has 2 values, lr has 3 values
    >>> rows_of("arch", [])
    Traceback (most recent call last):
    ...
    ivory_hydra.core.zipped.ZipError: zipped dimension 'arch': the zip is empty; give it two \
or more members, as zip(model=[resnet,vit], lr=[0.1,0.01])
    """
    check_name(dimension)
    if not members:
        raise ZipError(
            dimension,
            "the zip is empty; give it two or more members, as "
            "zip(model=[resnet,vit], lr=[0.1,0.01])",
        )
    names = [name for name, _ in members]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ZipError(dimension, f"member {repeated[0]!r} is given twice")
    if len(members) < 2:
        raise ZipError(
            dimension,
            f"it has one member ({names[0]}); a zip pairs the values of two or more "
            "members (sweep one param on its own instead)",
        )
    for name, values in members:
        if not values:
            raise ZipError(dimension, f"member {name!r} has no values")
    lengths = [len(values) for _, values in members]
    if len(set(lengths)) > 1:
        counts = ", ".join(
            f"{n} has {k} value{'s' if k != 1 else ''}" for n, k in zip(names, lengths, strict=True)
        )
        raise ZipError(dimension, f"its members have different lengths: {counts}")
    return [
        Row(
            dimension,
            i,
            tuple((name, values[i]) for name, values in members),
            tuple(text(values[i]) for _, values in members),
        )
        for i in range(lengths[0])
    ]


def check_name(dimension: str) -> str:
    """Return ``dimension`` if it is a plain identifier, else raise :class:`ZipError`.

    >>> check_name("model_optimizer")
    'model_optimizer'
    >>> check_name("db.model")
    Traceback (most recent call last):
    ...
    ivory_hydra.core.zipped.ZipError: zipped dimension 'db.model': its name must be a plain \
identifier (letters, digits, _), since it is no config key
    """
    if not NAME.fullmatch(dimension):
        raise ZipError(
            dimension,
            "its name must be a plain identifier (letters, digits, _), since it is no config key",
        )
    return dimension


def check_zips(
    zips: Mapping[str, Sequence[str]],
    params: Mapping[str, bool],
    repeat: Collection[str] = (),
    is_config_key: Callable[[str], bool] = lambda name: False,
) -> None:
    """Check zipped dimensions against the sweep's other params; raise :class:`ZipError`.

    ``zips`` maps each dimension to its members' names; ``params`` maps each
    other param to whether it is swept. A member may belong to one dimension
    only and may not be a param of its own; a dimension's name may not be a
    config key; a repeat param is swept on its own (a whole dimension may be the
    repeats, a member may not).

    >>> check_zips({"arch": ["model", "lr"]}, {"lr": True, "seed": True})
    Traceback (most recent call last):
    ...
    ivory_hydra.core.zipped.ZipError: zipped dimension 'arch': member 'lr' is also swept on \
its own; remove one of them
    >>> check_zips({"arch": ["model", "lr"]}, {}, repeat=["lr"])
    Traceback (most recent call last):
    ...
    ivory_hydra.core.zipped.ZipError: zipped dimension 'arch': member 'lr' is named in \
repeat; a repeat param is swept on its own (or name the whole dimension, repeat: [arch])
    >>> check_zips({"model": ["m", "lr"]}, {}, is_config_key=lambda n: n == "model")
    Traceback (most recent call last):
    ...
    ivory_hydra.core.zipped.ZipError: zipped dimension 'model': 'model' is a config key or \
group; a dimension's name never reaches the job config, so choose another name
    """
    owner: dict[str, str] = {}
    every_member = {member for members in zips.values() for member in members}
    for dimension, members in zips.items():
        check_name(dimension)
        if dimension in every_member:
            raise ZipError(dimension, "a member of a zip has this name; choose another one")
        if is_config_key(dimension):
            raise ZipError(
                dimension,
                f"{dimension!r} is a config key or group; a dimension's name never reaches "
                "the job config, so choose another name",
            )
        for member in members:
            if member in params:
                how = "swept" if params[member] else "set"
                raise ZipError(
                    dimension, f"member {member!r} is also {how} on its own; remove one of them"
                )
            if member in owner:
                raise ZipError(
                    dimension, f"member {member!r} is also a member of {owner[member]!r}"
                )
            if member in repeat:
                raise ZipError(
                    dimension,
                    f"member {member!r} is named in repeat; a repeat param is swept on its "
                    f"own (or name the whole dimension, repeat: [{dimension}])",
                )
            owner[member] = dimension


def members_of(swept: Mapping[str, Sequence[Any]]) -> Iterator[tuple[str, list[Any]]]:
    """Each param's values, a zipped dimension's members in its place.

    >>> rows = rows_of("arch", [("m", ["a", "b"]), ("lr", [1, 2])])
    >>> list(members_of({"seed": [0, 1], "arch": rows}))
    [('seed', [0, 1]), ('m', ['a', 'b']), ('lr', [1, 2])]
    """
    for name, values in swept.items():
        if values and isinstance(values[0], Row):
            for position, member in enumerate(values[0].keys()):
                yield member, [row.members[position][1] for row in values]
        else:
            yield name, list(values)

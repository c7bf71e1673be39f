"""Sweep definitions from Hydra overrides, with Ivory's range strings.

Hydra's grammar reads ``x=-1_1`` as the int -11, so ranges are found in the
raw argument text: an unquoted value (or comma-list element) made only of
numbers and range separators is an Ivory range; a quoted one never is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.ranges import Range, is_range_string
from ivory_hydra.core.space import Interval, space_from_text
from ivory_hydra.core.zipped import Row, rows_of
from ivory_hydra.sweeper.errors import SweepDefinitionError

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override

PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: A number (or nan/inf), a range separator, and the start of another: meant as a range.
RANGE_ATTEMPT = re.compile(
    r"[+-]?(?:nan|inf|\d|\.\d)[\w.+]*?[-_][+-]?(?:nan|inf|\d|\.\d)", re.IGNORECASE
)
PARAMS_PREFIX = "hydra.sweeper.params."


@dataclass(frozen=True)
class SweepValue:
    """One value of a param: its override text and its Python value.

    >>> SweepValue("1e-05", 1e-05)
    SweepValue(text='1e-05', value=1e-05)
    """

    text: str
    value: Any


@dataclass(frozen=True)
class SweepParam:
    """A param of the sweep: its override key, display name and values.

    In optimize mode a param may instead span an :class:`Interval` that the
    sampler draws from (``values`` is then empty).
    """

    key: str
    values: tuple[SweepValue, ...]
    log: bool = False
    delete: bool = False
    space: Interval | None = None

    @property
    def swept(self) -> bool:
        """True when jobs get different values of this param."""
        return self.space is not None or len(self.values) > 1

    def sampled(self, value: Any) -> SweepValue:
        """The override value for a value the sampler picked.

        >>> SweepParam("m", (SweepValue("'a b'", "a b"), SweepValue("c", "c"))).sampled("a b")
        SweepValue(text="'a b'", value='a b')
        >>> SweepParam("lr", (), space=Interval(1e-5, 0.1, log=True)).sampled(0.001)
        SweepValue(text='0.001', value=0.001)
        """
        for known in self.values:
            if known.value == value and type(known.value) is type(value):
                return known
        return SweepValue(repr(value) if isinstance(value, float) else str(value), value)

    def checked(self) -> SweepParam:
        """The param as validation checks it: an interval by its two ends.

        >>> SweepParam("x", (), space=Interval(0, 4, 1, is_int=True)).checked().values
        (SweepValue(text='0', value=0), SweepValue(text='4', value=4))
        """
        if self.space is None:
            return self
        ends = (self.sampled(self.space.low), self.sampled(self.space.high))
        return SweepParam(self.key, ends, self.log, self.delete)

    def describe(self) -> list[str]:
        """The param's value space as text (what identifies the sweep).

        >>> SweepParam("x", (), space=Interval(0, 4, 1, is_int=True)).describe()
        ['int 0..4 step 1']
        """
        return [self.space.describe()] if self.space is not None else [v.text for v in self.values]

    @property
    def name(self) -> str:
        """The key without Hydra's ``+``, ``++`` or ``~`` prefix.

        >>> SweepParam("+db.port", ()).name
        'db.port'
        """
        return self.key.lstrip("+~")

    def override(self, value: SweepValue) -> str:
        """The job override that sets this param to ``value``.

        >>> SweepParam("lr", ()).override(SweepValue("0.1", 0.1))
        'lr=0.1'
        """
        if self.delete and value.text == "":
            return self.key
        return f"{self.key}={value.text}"


def looks_like_range(text: str) -> bool:
    """True when unquoted ``text`` is meant as an Ivory range string.

    Either it is one, or it starts like one (a number, ``-`` or ``_``, another
    number) and then goes wrong, as ``1e-3_1e2:6.lg`` or ``nan-1`` do: that is
    an error to report, not a literal string to pass on.

    >>> [looks_like_range(t) for t in ["1e-3_1e2:6.log", "3-7", "-1_1", "1e-3", "0.5"]]
    [True, True, True, False, False]
    >>> [looks_like_range(t) for t in ["1e-3_1e2:6.lg", "0-1:5.LOG", "nan-1", "3-7:"]]
    [True, True, True, True]
    >>> [looks_like_range(t) for t in ["resnet-50", "'3-7'", "abc", "-3", "1.2.3", "10:30"]]
    [False, False, False, False, False, False]
    """
    text = text.strip()
    if PLAIN_NUMBER.fullmatch(text):
        return False
    return is_range_string(text) or RANGE_ATTEMPT.match(text) is not None


def _scan(text: str) -> Iterator[tuple[int, str, int, bool]]:
    """Each character of ``text`` with the bracket depth after it, and whether it is
    literal: escaped, or inside quotes that are still open after it."""
    depth = 0
    quote: str | None = None
    escaped = False
    for i, char in enumerate(text):
        was_escaped, escaped = escaped, False
        if was_escaped:
            pass
        elif char == "\\":
            escaped = True
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        yield i, char, depth, was_escaped or escaped or quote is not None


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep`` outside quotes and brackets.

    >>> split_top_level("1-3,'a,b',[1,2],x")
    ['1-3', "'a,b'", '[1,2]', 'x']
    """
    parts: list[str] = []
    start = 0
    for i, char, depth, literal in _scan(text):
        if char == sep and depth == 0 and not literal:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def range_values(text: str) -> tuple[list[SweepValue], bool]:
    """The values of an Ivory range string, with their override texts.

    >>> range_values("1e-3_1e-1:3.log")
    ([SweepValue(text='0.001', value=0.001), SweepValue(text='0.01', value=0.01), \
SweepValue(text='0.1', value=0.1)], True)
    """
    values = Range(text)
    return [SweepValue(repr(v), v) for v in values], bool(values.log)


def _element_value(element: Any) -> SweepValue:
    from ivory_hydra._compat import element_text, element_value

    return SweepValue(element_text(element), element_value(element))


def _interval_of(override: Override, line: str) -> Interval | None:
    """Optimize mode: Hydra's ``interval()`` and ``range()``, read as its Optuna sweeper does."""
    value = override.value()
    if override.is_interval_sweep():
        start, end = value.start, value.end  # type: ignore[union-attr]
        is_int = isinstance(start, int) and isinstance(end, int)
        log = "log" in value.tags  # type: ignore[union-attr]
        if start is None or end is None or not start < end:
            raise SweepDefinitionError(f"override {line!r}: the interval is empty")
        if log and start <= 0:
            raise SweepDefinitionError(f"override {line!r}: a log interval needs start > 0")
        return Interval(start, end, 1 if is_int else None, log, is_int)
    if override.is_range_sweep() and not value.shuffle:  # type: ignore[union-attr]
        start, stop, step = value.start, value.stop, value.step  # type: ignore[union-attr]
        is_int = all(isinstance(v, int) for v in (start, stop, step))
        if step is None or step <= 0 or not start < stop:
            raise SweepDefinitionError(f"override {line!r}: the range is empty")
        return Interval(start, stop, step, False, is_int)
    return None


def param_from_override(override: Override, optimize: bool = False) -> SweepParam:
    """Expand one parsed override into a param with its values (or, optimize, its space).

    Raises :class:`SweepDefinitionError` naming the override when a range is
    malformed or the sweep kind cannot be enumerated.
    """
    line = override.input_line or override.get_key_element()
    key = override.get_key_element()
    if override.is_delete():
        raw = override.input_line or ""
        text = raw.split("=", 1)[1] if "=" in raw else ""
        return SweepParam(key, (SweepValue(text, None),), delete=True)
    if optimize:
        space = _interval_of(override, line)
        if space is not None:
            return SweepParam(key, (), space=space)
    elif override.is_interval_sweep():
        raise SweepDefinitionError(
            f"{line!r}: interval() sweeps are continuous; in product and chain mode the "
            "ivory sweeper needs values it can list, e.g. a range string like 0.0-1.0:5 "
            "(or hydra.sweeper.mode=optimize)"
        )
    raw_value = override.get_value_string()
    if override.is_sweep_override() and override.value_type is not None:
        from hydra.core.override_parser.types import ValueType

        if override.value_type != ValueType.SIMPLE_CHOICE_SWEEP:
            elements = list(override.sweep_iterator())
            return SweepParam(key, tuple(_element_value(e) for e in elements))
        elements = list(override.sweep_iterator())
    else:
        from ivory_hydra._compat import override_element

        elements = [override_element(override)]
    raw_elements = split_top_level(raw_value)
    if len(raw_elements) != len(elements):
        raw_elements = [""] * len(elements)
    values: list[SweepValue] = []
    log = False
    for raw, element in zip(raw_elements, elements, strict=True):
        if looks_like_range(raw):
            try:
                if optimize and len(raw_elements) == 1:
                    space = space_from_text(raw.strip())
                    if isinstance(space, Interval):
                        return SweepParam(key, (), log=space.log, space=space)
                expanded, is_log = range_values(raw.strip())
            except ValueError as error:
                raise SweepDefinitionError(
                    f"override {line!r}: {error}. To pass it as a literal string, "
                    f"quote it: {key}='{raw.strip()}'"
                ) from None
            values.extend(expanded)
            log = log or (is_log and len(raw_elements) == 1)
        else:
            values.append(_element_value(element))
    return SweepParam(key, tuple(values), log=log)


def params_arguments(
    params: Mapping[str, Any], raw_hydra_overrides: Iterable[str] = ()
) -> list[str]:
    """Turn ``hydra.sweeper.params`` into override strings, raw text first.

    A param set on the command line as ``hydra.sweeper.params.x=-1_1`` keeps
    its raw text, since the config already holds Hydra's reading (-11).

    >>> params_arguments({"x": -11, "m": ["a", "b"]}, ["hydra.sweeper.params.x=-1_1"])
    ['x=-1_1', 'm=a,b']
    """
    raw: dict[str, str] = {}
    for line in raw_hydra_overrides:
        key, _, value = line.lstrip("+").partition("=")
        if key.startswith(PARAMS_PREFIX):
            raw[key[len(PARAMS_PREFIX) :]] = value
    arguments = []
    for key, value in params.items():
        if key in raw:
            text = raw[key]
        elif isinstance(value, (list, tuple)):
            text = ",".join(_yaml_element(v) for v in value)
        else:
            text = _yaml_element(value)
        arguments.append(f"{key}={text}")
    return arguments


def _yaml_element(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def merge_arguments(config_arguments: Sequence[str], cli_arguments: Sequence[str]) -> list[str]:
    """Config params first, then the command line; the command line wins on a key.

    >>> merge_arguments(["a=1,2", "b=3"], ["c=4", "a=5"])
    ['a=5', 'b=3', 'c=4']
    """
    merged: dict[str, str] = {}
    for argument in [*config_arguments, *cli_arguments]:
        key = argument.split("=", 1)[0].lstrip("+~")
        merged[key] = argument
    return list(merged.values())


# ------------------------------------------------------------------ zipped dimensions

#: Member values a zip cannot list (the message says why).
_UNZIPPABLE = {
    "zip": "a zip cannot hold another zip",
    "interval": "interval() is continuous; a zip needs listed values "
    "(a list, choice(), range() or a range string)",
    "shuffle": "shuffle() would break the rows apart; shuffle nothing inside a zip",
}
MEMBER_KEY = re.compile(r"\+{0,2}[A-Za-z_][\w.\-/@]*")


@dataclass(frozen=True)
class ZipParam:
    """A zipped dimension: its name, its members (each a param with its values), its rows.

    Row ``i`` holds the ``i``-th value of every member; a job gets the members'
    overrides, never the name.
    """

    name: str
    members: tuple[SweepParam, ...]
    rows: tuple[Row, ...]

    @property
    def swept(self) -> bool:
        """True when jobs get different rows."""
        return len(self.rows) > 1

    def describe(self) -> list[str]:
        """The rows as text (what identifies the sweep).

        >>> a = SweepParam("a", (SweepValue("1", 1), SweepValue("2", 2)))
        >>> m = SweepParam("m", (SweepValue("x", "x"), SweepValue("y", "y")))
        >>> zipped_param("d", [a, m]).describe()
        ['a=1 m=x', 'a=2 m=y']
        """
        return [row.label for row in self.rows]

    def sampled(self, label: Any) -> Row:
        """The row that optimize mode's sampler picked, by its label."""
        return next((row for row in self.rows if row.label == label), self.rows[0])


def zipped_param(name: str, members: Sequence[SweepParam]) -> ZipParam:
    """A zipped dimension of parsed members (raises :class:`~ivory_hydra.core.zipped.ZipError`)."""
    pairs = [(m.name, list(m.values)) for m in members]
    rows = rows_of(name, pairs, text=lambda value: value.text)
    return ZipParam(name, tuple(members), tuple(rows))


def zip_text(value: str) -> str | None:
    """The ``zip(...)`` text of a param's value (Hydra's quotes taken off), else None.

    >>> zip_text("'zip(m=[a,b], n=[1,2])'"), zip_text("zipped"), zip_text("a,b")
    ('zip(m=[a,b], n=[1,2])', None, None)
    """
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text if re.match(r"zip\s*\(", text) else None


def zip_members(text: str) -> list[tuple[str, str]]:
    """The members of a ``zip(...)`` text as ``(key, values text)``, a list's brackets off.

    Raises ``ValueError`` saying what is malformed.

    >>> zip_members("zip(model=[resnet,vit], lr=1e-3_1e-1:2.log, bs=choice(8,16))")
    [('model', 'resnet,vit'), ('lr', '1e-3_1e-1:2.log'), ('bs', 'choice(8,16)')]
    >>> zip_members("zip(model=[resnet,vit], [1,2])")
    Traceback (most recent call last):
    ...
    ValueError: malformed zip: '[1,2]' is not a member; write key=values, as lr=[0.1,0.01]
    """
    body = text.strip()[text.strip().index("(") + 1 :]
    if not body.endswith(")") or _unclosed(body[:-1]) != 0:
        raise ValueError(f"malformed zip: unbalanced brackets or quotes in {text!r}")
    body = body[:-1].strip()
    if not body:
        return []
    members = []
    for part in split_top_level(body):
        key, equals, values = (s.strip() for s in part.partition("="))
        if not equals or not MEMBER_KEY.fullmatch(key):
            raise ValueError(
                f"malformed zip: {part.strip()!r} is not a member; write key=values, "
                "as lr=[0.1,0.01]"
            )
        function = values.split("(", 1)[0].strip()
        if "(" in values and function in _UNZIPPABLE:
            raise ValueError(f"member {key!r}: {_UNZIPPABLE[function]}")
        if values.startswith("[") and values.endswith("]") and _unclosed(values[1:-1]) == 0:
            values = values[1:-1].strip()
        if not values:
            raise ValueError(f"member {key!r} has no values")
        members.append((key, values))
    return members


def _unclosed(text: str) -> int:
    """How many brackets (or a quote) are still open at the end of ``text``; -1 if one
    closes that never opened.

    >>> _unclosed("[a,(b)]"), _unclosed("[a"), _unclosed("a]"), _unclosed("'a")
    (0, 1, -1, 1)
    """
    depth, literal = 0, False
    for _, _, depth, literal in _scan(text):  # noqa: B007 - the last one counts
        if depth < 0:
            return -1
    return depth + (1 if literal else 0)

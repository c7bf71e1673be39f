"""The string form of a range: ``'<start>-<stop>[-<step>][:<num>][.log]'``.

:func:`is_range_string` tells whether a text has the syntax, :func:`parse_range`
reads one into the arguments of :class:`~ivory_hydra.core.ranges.Range`, and
:func:`invalid_range_string` is the error every problem with a range string
raises (:attr:`Range.spec <ivory_hydra.core.ranges.Range.spec>` writes the form).

Differences from Ivory (where Ivory crashed):

* ``'-3-3'``, ``'3--1'`` and ``'1e-3-1e-2:3'`` raised a SyntaxError in Ivory.
  Here a number grammar reads them unambiguously: a ``-`` right after a
  separator (or at the start) is a sign, and a ``-`` right after ``e``/``E``
  belongs to the exponent.
* Malformed input raises :class:`ValueError` naming the string and showing the
  grammar, never any other exception.

>>> parse_range('-3_3_2')
(-3, 3, 2, 0, False)
>>> parse_range('1e-3_1e2:6.log')
(0.001, 100.0, 1, 6, True)
"""

from __future__ import annotations

import re

from ivory_hydra.core.range_spacing import Number

__all__ = [
    "GRAMMAR",
    "RANGE_PATTERN",
    "invalid_range_string",
    "is_range_string",
    "parse_number",
    "parse_range",
]

#: Human-readable grammar of range strings, shown in every parse error.
GRAMMAR = (
    "'<start>-<stop>[-<step>][:<num>][.log]', where '_' may replace '-' as the "
    "separator, a number is [+-]?(digits[.digits]|.digits)([eE][+-]?digits)?, "
    "<step> is a positive size, <num> a positive integer, and .log needs a "
    "<num> of at least 2 (e.g. '3-7', '3-7-2', '0.0-1.0:5', '1e-3_1e2:6.log', "
    "'-3_3_2', '3--1')"
)

_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
RANGE_PATTERN = re.compile(
    rf"(?P<start>{_NUMBER})[-_](?P<stop>{_NUMBER})"
    rf"(?:[-_](?P<step>{_NUMBER}))?"
    r"(?::(?P<num>[0-9]+))?"
    r"(?P<log>\.log)?",
    re.ASCII,
)


def is_range_string(text: str) -> bool:
    """Return True when ``text`` has the syntax of a range string.

    The check is syntactic only: ``Range(text)`` may still reject a string that
    matches, e.g. one with step 0, both a step and a num, or an infinite
    number, and then raises :class:`ValueError` explaining why. A single
    number, such as ``'1e-3'``, is not a range string. Callers decide what to
    do with strings like ``'2020-06'``, which do match (start 2020, stop 6).

    >>> is_range_string('3-7')
    True
    >>> is_range_string('1e-3_1e2:6.log')
    True
    >>> is_range_string('1e-3')
    False
    >>> is_range_string('abc')
    False
    >>> is_range_string('2020-06')
    True
    """
    return isinstance(text, str) and RANGE_PATTERN.fullmatch(text) is not None


def parse_number(token: str) -> Number:
    """A number token of the grammar as an int or a float.

    >>> parse_number("3"), parse_number("1e-3")
    (3, 0.001)
    """
    if _INT.fullmatch(token):
        return int(token)
    return float(token)


def parse_range(text: str) -> tuple[Number, Number, Number, int, bool]:
    """Read a range string into ``(start, stop, step, num, log)``.

    ``step`` is 1 and ``num`` 0 where the string gives none. Raises
    :class:`ValueError` with the bare reason; :class:`Range` wraps it in
    :func:`invalid_range_string`.

    >>> parse_range('3-7-2')
    (3, 7, 2, 0, False)
    >>> parse_range('3-7-2:4')
    Traceback (most recent call last):
    ...
    ValueError: give a step or a num, not both
    """
    match = RANGE_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError("does not match the grammar")
    start = parse_number(match["start"])
    stop = parse_number(match["stop"])
    step: Number = 1
    num = 0
    if match["step"] is not None:
        if match["num"] is not None:
            raise ValueError("give a step or a num, not both")
        step = parse_number(match["step"])
    if match["num"] is not None:
        num = int(match["num"])
        if num < 1:
            raise ValueError(f"num must be at least 1, not {num}")
    return start, stop, step, num, match["log"] is not None


def invalid_range_string(text: str, reason: object) -> ValueError:
    """The error for a range string that cannot be read: the string, why, and the grammar.

    >>> invalid_range_string('3-x', 'does not match the grammar')  # doctest: +ELLIPSIS
    ValueError("invalid range string '3-x': does not match the grammar; expected '<start>...")
    """
    return ValueError(f"invalid range string {_short_repr(text)}: {reason}; expected {GRAMMAR}")


def _short_repr(text: str, limit: int = 200) -> str:
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"

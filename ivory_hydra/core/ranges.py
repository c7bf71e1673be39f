"""Ivory-style ranges of parameter values (CONTRACT.md section 1).

A :class:`Range` works like the built-in :class:`range`, but the stop value is
included, floats and log scales are supported, and it can be written as a
string such as ``'3-7'``, ``'0.0-1.0:5'`` or ``'1e-3_1e2:6.log'``.

>>> list(Range(6))
[0, 1, 2, 3, 4, 5, 6]
>>> list(Range(3, 10, 2))
[3, 5, 7, 9]
>>> list(Range(3, 10, num=4))
[3, 5, 8, 10]
>>> list(Range(0.0, 1.0, 0.25))
[0.0, 0.25, 0.5, 0.75, 1.0]
>>> list(Range(1e-3, 1e2, num=6, log=True))
[0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
>>> list(Range('1e-3_1e2:6.log'))
[0.001, 0.01, 0.1, 1.0, 10.0, 100.0]

Differences from Ivory (where Ivory crashed or was wrong):

* ``'-3-3'``, ``'3--1'`` and ``'1e-3-1e-2:3'`` raised a SyntaxError in Ivory.
  Here a number grammar reads them unambiguously: a ``-`` right after a
  separator (or at the start) is a sign, and a ``-`` right after ``e``/``E``
  belongs to the exponent.
* Integer sampling never repeats a value: Ivory gave ``[0, 0, 0, 1, 1]`` for
  ``'0-1:5'``; here it raises :class:`ValueError`.
* Float values are clean: ``'0-1-0.2'`` contains ``0.6``, not
  ``0.6000000000000001``. Values are computed exactly in decimal arithmetic
  from the shortest decimal form of each input and then rounded once to a
  float.
* Malformed input raises :class:`ValueError` naming the string and showing the
  grammar, never any other exception.
"""

from __future__ import annotations

import math
import numbers
import re
import sys
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from fractions import Fraction
from typing import overload

__all__ = ["GRAMMAR", "Range", "is_range_string"]

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

# Decimal precision used for float values; far above a float's 17 digits, so
# the single final rounding to float is what decides each value.
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)
# len() cannot report more than this.
_MAX_LEN = sys.maxsize
_TOO_MANY = f"too many values (more than {_MAX_LEN})"

Number = int | float


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


def _short_repr(text: str, limit: int = 200) -> str:
    if len(text) <= limit:
        return repr(text)
    return repr(text[:limit]) + f"... ({len(text)} characters)"


def parse_number(token: str) -> Number:
    """A number token of the grammar as an int or a float.

    >>> parse_number("3"), parse_number("1e-3")
    (3, 0.001)
    """
    if _INT.fullmatch(token):
        return int(token)
    return float(token)


def _normalize(name: str, value: object) -> Number:
    """Return ``value`` as an int or float, or raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        raise ValueError(f"{name} must be an int or a float, not {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, not {value!r}")
    return number


def _decimal(value: Number) -> Decimal:
    """Exact decimal of an int, or of a float's shortest decimal form."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _format(value: Number, as_float: bool) -> str:
    return repr(float(value)) if as_float else str(value)


class Range:
    """An iterable of evenly spaced values whose stop value is included.

    ``Range(stop)`` means ``Range(0, stop)``.

    * If ``start``, ``stop`` and ``step`` are all ints, the values are ints and
      ``step`` is the distance between them; the last value is the last one
      not past ``stop``. A start above stop counts down: the step is a size
      and must be positive.
    * ``num`` (instead of a step) asks for that many values spread evenly from
      ``start`` to ``stop``. With int ends they are rounded to ints (half to
      even, like numpy) and never repeat: asking for more values than the
      integers between the ends raises :class:`ValueError`.
    * Otherwise the values are floats: ``num = round(|stop - start| / step) + 1``
      values spread evenly, both ends included. ``num=1`` (or a step larger
      than twice the span) gives just ``[start]``.
    * ``log=True`` spreads ``num >= 2`` values evenly on a log scale between
      two positive ends. Log values are always floats.

    ``start`` may instead be a string ``'<start>-<stop>[-<step>][:<num>][.log]'``
    (``_`` may replace ``-``); see :data:`GRAMMAR`. Every problem raises
    :class:`ValueError`.

    >>> list(Range(3, 6))
    [3, 4, 5, 6]
    >>> list(Range(10, 3, 3))
    [10, 7, 4]
    >>> list(Range(0.0, 1.0, num=5))
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> list(Range(0, 1, 0.1))[3]
    0.3
    >>> list(Range('-3_3_2'))
    [-3, -1, 1, 3]
    >>> list(Range('1e-3-1e-2:3'))
    [0.001, 0.0055, 0.01]
    >>> Range(3, 10, 2)
    Range(3, 10, step=2)
    >>> Range('0-1:5')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid range string '0-1:5': num=5 asks for more distinct ...
    """

    __slots__ = (
        "_text",
        "_args",
        "_start",
        "_stop",
        "_step",
        "_num",
        "_log",
        "_is_int",
        "_len",
        "_dstart",
        "_dstop",
        "_dexp",
    )

    def __init__(
        self,
        start: Number | str,
        stop: Number | None = None,
        step: Number = 1,
        num: int = 0,
        log: bool = False,
    ) -> None:
        self._text: str | None = None
        if isinstance(start, str):
            if stop is not None or step != 1 or num or log:
                raise ValueError(f"Range({start!r}, ...): a range string takes no other arguments")
            self._text = start
            try:
                self._setup(*self._parse(start))
            except (ValueError, ArithmeticError) as error:
                raise ValueError(
                    f"invalid range string {_short_repr(start)}: {error}; expected {GRAMMAR}"
                ) from None
            return
        self._setup(start, stop, step, num, log)

    @staticmethod
    def _parse(text: str) -> tuple[Number, Number, Number, int, bool]:
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

    def _setup(self, start: object, stop: object, step: object, num: object, log: object) -> None:
        given_start = None if stop is None else start
        if stop is None:
            start, stop = 0, start
        start_ = _normalize("start", start)
        stop_ = _normalize("stop", stop)
        step_ = _normalize("step", step)
        if isinstance(num, bool) or not isinstance(num, numbers.Integral):
            raise ValueError(f"num must be an int, not {num!r}")
        num_ = int(num)
        log_ = bool(log)
        self._args = (
            None if given_start is None else start_,
            stop_,
            step_,
            num_,
            log_,
        )
        if step_ <= 0:
            raise ValueError(
                f"step must be positive (it is a size; a start above stop "
                f"counts down), not {step_!r}"
            )
        if num_ < 0:
            raise ValueError(f"num must be positive, not {num_}")
        if num_ and step_ != 1:
            raise ValueError("give a step or a num, not both")

        self._start, self._stop, self._log = start_, stop_, log_
        self._step: Number | None = None if num_ or log_ else step_
        self._num: int | None = num_ or None
        self._is_int = (
            not log_
            and isinstance(start_, int)
            and isinstance(stop_, int)
            and isinstance(step_, int)
        )
        if log_:
            self._setup_log(num_)
        elif self._is_int:
            self._setup_int(num_)
        else:
            self._setup_float(num_)
        if self._len > _MAX_LEN:
            raise ValueError(_TOO_MANY)

    def _setup_int(self, num: int) -> None:
        start, stop = int(self._start), int(self._stop)
        distinct = abs(stop - start) + 1
        if not num:
            self._len = abs(stop - start) // int(self._step or 1) + 1
        elif num > distinct:
            raise ValueError(
                f"num={num} asks for more distinct integers than the {distinct} "
                f"from {start} to {stop}; use float ends for fractional values"
            )
        else:
            self._len = num

    def _floats(self) -> None:
        try:
            self._start, self._stop = float(self._start), float(self._stop)
        except OverflowError:
            raise ValueError(
                f"{self._start!r} to {self._stop!r} is out of the float range"
            ) from None

    def _setup_float(self, num: int) -> None:
        self._floats()
        self._dstart, self._dstop = _decimal(self._start), _decimal(self._stop)
        with localcontext(_CONTEXT):
            span = abs(self._dstop - self._dstart)
            if num:
                self._len = num
            else:
                ratio = span / _decimal(self._step or 1)
                self._len = int(ratio.to_integral_value(ROUND_HALF_EVEN)) + 1
                if self._len > _MAX_LEN:
                    raise ValueError(_TOO_MANY)
            if self._len < 2:
                return
            if span == 0:
                raise ValueError(
                    f"start and stop are both {self._start!r}, so {self._len} values would repeat"
                )
            gap = span / (self._len - 1)
            biggest = max(abs(self._start), abs(self._stop))
            if gap <= 2 * Decimal(math.ulp(biggest)):
                raise ValueError(
                    f"{self._len} values between {self._start!r} and "
                    f"{self._stop!r} are too close to be distinct floats"
                )

    def _setup_log(self, num: int) -> None:
        self._floats()
        if num < 2:
            raise ValueError(
                f"a log range needs num of at least 2, not {num}"
                if num
                else "a log range needs num (of at least 2), not a step"
            )
        if self._start <= 0 or self._stop <= 0:
            raise ValueError(
                f"a log range needs positive ends, not {self._start!r} and {self._stop!r}"
            )
        self._len = num
        self._dstart, self._dstop = _decimal(self._start), _decimal(self._stop)
        with localcontext(_CONTEXT):
            low = min(self._dstart, self._dstop)
            exp_start, exp_stop = self._dstart.log10(), self._dstop.log10()
            self._dexp = (exp_start, exp_stop)
            if num > _MAX_LEN:
                raise ValueError(_TOO_MANY)
            ratio = Decimal(10) ** (abs(exp_stop - exp_start) / (num - 1))
            growth = ratio - 1
            smallest_gap = low * growth
            if growth <= Decimal(2) ** -49 or smallest_gap <= 2 * Decimal(math.ulp(float(low))):
                raise ValueError(
                    f"{num} log-spaced values between {self._start!r} and "
                    f"{self._stop!r} are too close to be distinct floats"
                )

    # -- values -----------------------------------------------------------

    def _value(self, i: int) -> Number:
        last = self._len - 1
        if i == 0:
            return self._start
        if self._is_int:
            start, stop = int(self._start), int(self._stop)
            if self._step is not None:
                sign = 1 if stop >= start else -1
                return start + sign * i * int(self._step)
            if i == last:
                return stop
            return start + round(Fraction((stop - start) * i, last))
        if i == last:
            return self._stop
        with localcontext(_CONTEXT):
            if self._log:
                exp_start, exp_stop = self._dexp
                exponent = exp_start + (exp_stop - exp_start) * i / last
                return float(Decimal(10) ** exponent)
            return float(self._dstart + (self._dstop - self._dstart) * i / last)

    def __len__(self) -> int:
        """Return the number of values.

        >>> len(Range(3, 10, 2))
        4
        """
        return self._len

    def __iter__(self) -> Iterator[Number]:
        """Yield the values in order.

        >>> [v for v in Range('2-8:4')]
        [2, 4, 6, 8]
        """
        for i in range(self._len):
            yield self._value(i)

    @overload
    def __getitem__(self, index: int) -> Number: ...

    @overload
    def __getitem__(self, index: slice) -> list[Number]: ...

    def __getitem__(self, index: int | slice) -> Number | list[Number]:
        """Return one value by position, or a list of values for a slice.

        >>> r = Range(0.0, 1.0, num=5)
        >>> r[1], r[-1], r[1:3]
        (0.25, 1.0, [0.25, 0.5])
        """
        if isinstance(index, slice):
            return [self._value(i) for i in range(*index.indices(self._len))]
        i = index.__index__()
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError("Range index out of range")
        return self._value(i)

    def __eq__(self, other: object) -> bool:
        """Ranges are equal when they hold the same values of the same type.

        >>> Range(6) == Range('0-6') == Range(0, 6, num=7)
        True
        >>> Range(0, 1) == Range(0.0, 1.0)
        False
        """
        if not isinstance(other, Range):
            return NotImplemented
        if self._is_int != other._is_int or self._len != other._len:
            return False
        if self._key() == other._key():
            return True
        return all(a == b for a, b in zip(self, other, strict=True))

    def _key(self) -> tuple[object, ...]:
        """A summary that determines the values (equal keys: equal values)."""
        if self._len <= 2:
            return ("values", *self)
        if self._log:
            return ("log", self._start, self._stop, self._len)
        if not self._is_int:
            return ("linear", self._start, self._stop, self._len)
        start, stop = int(self._start), int(self._stop)
        sign = 1 if stop >= start else -1
        if self._step is not None:
            return ("arithmetic", start, sign * int(self._step), self._len)
        diff, rest = divmod(stop - start, self._len - 1)
        if not rest:
            return ("arithmetic", start, diff, self._len)
        return ("rounded", start, stop, self._len)

    def __hash__(self) -> int:
        """Hash consistently with ``==`` (equal ranges hash alike).

        >>> hash(Range(6)) == hash(Range('0_6'))
        True
        """
        return hash((self._is_int, self._len, self._value(0), self[-1]))

    def __repr__(self) -> str:
        """Show how the range was built.

        >>> Range(6)
        Range(6)
        >>> Range(1e-3, 1e2, num=6, log=True)
        Range(0.001, 100.0, num=6, log=True)
        >>> Range('1e-3_1e2:6.log')
        Range('1e-3_1e2:6.log')
        """
        if self._text is not None:
            return f"Range({self._text!r})"
        start, stop, step, num, log = self._args
        parts = [repr(stop)] if start is None else [repr(start), repr(stop)]
        if not (type(step) is int and step == 1):
            parts.append(f"step={step!r}")
        if num:
            parts.append(f"num={num!r}")
        if log:
            parts.append("log=True")
        return f"Range({', '.join(parts)})"

    # -- properties -------------------------------------------------------

    @property
    def text(self) -> str | None:
        """The string the range was built from, if it was.

        >>> Range("0_4").text, Range(4).text
        ('0_4', None)
        """
        return self._text

    @property
    def start(self) -> Number:
        """The first value.

        >>> Range(6).start
        0
        """
        return self._start

    @property
    def stop(self) -> Number:
        """The stop value (the last value, unless an int step overshoots it).

        >>> Range(3, 10, 2).stop
        10
        """
        return self._stop

    @property
    def step(self) -> Number | None:
        """The step as given, or None when the range was built with num.

        >>> Range(0.0, 1.0, 0.25).step, Range(0.0, 1.0, num=5).step
        (0.25, None)
        """
        return self._step

    @property
    def num(self) -> int | None:
        """The num as given, or None when the range was built with a step.

        >>> Range('3-10:4').num, Range('3-10').num
        (4, None)
        """
        return self._num

    @property
    def log(self) -> bool:
        """Whether the values are spread on a log scale.

        >>> Range('1e-3_1e2:6.log').log
        True
        """
        return self._log

    @property
    def is_int(self) -> bool:
        """Whether the values are ints.

        >>> Range(3, 7).is_int, Range(3, 7.0).is_int, Range('0-1-0.2').is_int
        (True, False, False)
        """
        return self._is_int

    @property
    def spec(self) -> str:
        """The canonical string form; ``Range(r.spec)`` has the same values.

        The form is ``'<start>_<stop>[_<step>][:<num>][.log]'``, with floats
        written in their shortest form.

        >>> Range(3, 10, 2).spec
        '3_10_2'
        >>> Range(1e-3, 1e2, num=6, log=True).spec
        '0.001_100.0:6.log'
        >>> Range('-3-3').spec
        '-3_3'
        >>> list(Range(Range(0, 1, 0.2).spec))
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        """
        as_float = not self._is_int
        text = f"{_format(self._start, as_float)}_{_format(self._stop, as_float)}"
        if self._num is not None:
            text += f":{self._num}"
        elif self._step is not None and not (isinstance(self._step, int) and self._step == 1):
            text += f"_{_format(self._step, as_float)}"
        if self._log:
            text += ".log"
        return text

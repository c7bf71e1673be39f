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

The string form (its grammar, how it is read, its errors) lives in
:mod:`ivory_hydra.core.range_grammar`; how the values are spaced and rounded
(ints, even floats, log-spaced floats) in :mod:`ivory_hydra.core.range_spacing`.
Every problem raises :class:`ValueError`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from decimal import Decimal
from typing import overload

from ivory_hydra.core.range_grammar import (
    GRAMMAR,
    invalid_range_string,
    is_range_string,
    parse_range,
)

# Re-exported: these lived here before the grammar had its own module.
from ivory_hydra.core.range_grammar import RANGE_PATTERN as RANGE_PATTERN
from ivory_hydra.core.range_grammar import parse_number as parse_number
from ivory_hydra.core.range_spacing import (
    MAX_LEN,
    TOO_MANY,
    IntSpacing,
    LinearSpacing,
    LogSpacing,
    Number,
    Spacing,
)

__all__ = ["GRAMMAR", "Range", "is_range_string"]


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

    __slots__ = ("_text", "_args", "_step", "_num", "_log", "_is_int", "_spacing")

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
                self._setup(*parse_range(start))
            except (ValueError, ArithmeticError) as error:
                raise invalid_range_string(start, error) from None
            return
        self._setup(start, stop, step, num, log)

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

        self._log = log_
        self._step: Number | None = None if num_ or log_ else step_
        self._num: int | None = num_ or None
        self._is_int = (
            not log_
            and isinstance(start_, int)
            and isinstance(stop_, int)
            and isinstance(step_, int)
        )
        self._spacing: Spacing
        if log_:
            self._spacing = LogSpacing(start_, stop_, num_)
        elif self._is_int:
            self._spacing = IntSpacing(int(start_), int(stop_), self._step, num_)
        else:
            self._spacing = LinearSpacing(start_, stop_, self._step, num_)
        if self._spacing.length > MAX_LEN:
            raise ValueError(TOO_MANY)

    # -- values -----------------------------------------------------------

    def __len__(self) -> int:
        """Return the number of values.

        >>> len(Range(3, 10, 2))
        4
        """
        return self._spacing.length

    def __iter__(self) -> Iterator[Number]:
        """Yield the values in order.

        >>> [v for v in Range('2-8:4')]
        [2, 4, 6, 8]
        """
        for i in range(self._spacing.length):
            yield self._spacing.value(i)

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
        length = self._spacing.length
        if isinstance(index, slice):
            return [self._spacing.value(i) for i in range(*index.indices(length))]
        i = index.__index__()
        if i < 0:
            i += length
        if not 0 <= i < length:
            raise IndexError("Range index out of range")
        return self._spacing.value(i)

    def __eq__(self, other: object) -> bool:
        """Ranges are equal when they hold the same values of the same type.

        >>> Range(6) == Range('0-6') == Range(0, 6, num=7)
        True
        >>> Range(0, 1) == Range(0.0, 1.0)
        False
        """
        if not isinstance(other, Range):
            return NotImplemented
        if self._is_int != other._is_int or len(self) != len(other):
            return False
        if self._key() == other._key():
            return True
        return all(a == b for a, b in zip(self, other, strict=True))

    def _key(self) -> tuple[object, ...]:
        """A summary that determines the values (equal keys: equal values)."""
        if len(self) <= 2:
            return ("values", *self)
        return self._spacing.key()

    def __hash__(self) -> int:
        """Hash consistently with ``==`` (equal ranges hash alike).

        >>> hash(Range(6)) == hash(Range('0_6'))
        True
        """
        return hash((self._is_int, len(self), self[0], self[-1]))

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
        return self._spacing.start

    @property
    def stop(self) -> Number:
        """The stop value (the last value, unless an int step overshoots it).

        >>> Range(3, 10, 2).stop
        10
        """
        return self._spacing.stop

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
        text = f"{_format(self.start, as_float)}_{_format(self.stop, as_float)}"
        if self._num is not None:
            text += f":{self._num}"
        elif self._step is not None and not (isinstance(self._step, int) and self._step == 1):
            text += f"_{_format(self._step, as_float)}"
        if self._log:
            text += ".log"
        return text

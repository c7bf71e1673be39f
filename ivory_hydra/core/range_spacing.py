"""How a :class:`~ivory_hydra.core.ranges.Range` spaces its values: how many, and each one.

One spacing a range:

* :class:`IntSpacing`: ints every ``step`` apart, or ``num`` ints spread evenly
  and rounded (half to even, like numpy);
* :class:`LinearSpacing`: floats spread evenly, both ends included;
* :class:`LogSpacing`: floats spread evenly on a log scale between two positive ends.

Each checks that its values are distinct and raises :class:`ValueError` when
they would not be. Differences from Ivory (where Ivory was wrong):

* Integer sampling never repeats a value: Ivory gave ``[0, 0, 0, 1, 1]`` for
  ``'0-1:5'``; here it raises :class:`ValueError`.
* Float values are clean: ``'0-1-0.2'`` contains ``0.6``, not
  ``0.6000000000000001``. Values are computed exactly in decimal arithmetic
  from the shortest decimal form of each input and then rounded once to a
  float.

>>> spacing = LinearSpacing(0, 1, 0.2, num=0)
>>> [spacing.value(i) for i in range(spacing.length)]
[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
"""

from __future__ import annotations

import math
import sys
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from fractions import Fraction

__all__ = ["MAX_LEN", "TOO_MANY", "IntSpacing", "LinearSpacing", "LogSpacing", "Number", "Spacing"]

Number = int | float

# Decimal precision used for float values; far above a float's 17 digits, so
# the single final rounding to float is what decides each value.
_CONTEXT = Context(prec=40, rounding=ROUND_HALF_EVEN)
#: len() cannot report more than this.
MAX_LEN = sys.maxsize
TOO_MANY = f"too many values (more than {MAX_LEN})"


def _decimal(value: Number) -> Decimal:
    """Exact decimal of an int, or of a float's shortest decimal form."""
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def _float_ends(start: Number, stop: Number) -> tuple[float, float]:
    try:
        return float(start), float(stop)
    except OverflowError:
        raise ValueError(f"{start!r} to {stop!r} is out of the float range") from None


class IntSpacing:
    """Ints from ``start`` towards ``stop``: every ``step``-th, or ``num`` of them.

    A start above stop counts down. The last value is the last one not past
    ``stop``; with ``num`` both ends are included.

    >>> spacing = IntSpacing(3, 10, None, num=4)
    >>> spacing.length, [spacing.value(i) for i in range(spacing.length)]
    (4, [3, 5, 8, 10])
    """

    __slots__ = ("start", "stop", "step", "length")

    def __init__(self, start: int, stop: int, step: int | None, num: int) -> None:
        """``step`` is None when ``num`` (at least 1) asks for that many values."""
        self.start, self.stop, self.step = start, stop, step
        distinct = abs(stop - start) + 1
        if not num:
            self.length = abs(stop - start) // (step or 1) + 1
        elif num > distinct:
            raise ValueError(
                f"num={num} asks for more distinct integers than the {distinct} "
                f"from {start} to {stop}; use float ends for fractional values"
            )
        else:
            self.length = num

    def value(self, i: int) -> int:
        """The ``i``-th value (``0 <= i < length``)."""
        start, stop = self.start, self.stop
        if i == 0:
            return start
        if self.step is not None:
            sign = 1 if stop >= start else -1
            return start + sign * i * self.step
        last = self.length - 1
        if i == last:
            return stop
        return start + round(Fraction((stop - start) * i, last))

    def key(self) -> tuple[object, ...]:
        """A summary that determines the values (for three or more of them)."""
        start, stop = self.start, self.stop
        sign = 1 if stop >= start else -1
        if self.step is not None:
            return ("arithmetic", start, sign * self.step, self.length)
        diff, rest = divmod(stop - start, self.length - 1)
        if not rest:
            return ("arithmetic", start, diff, self.length)
        return ("rounded", start, stop, self.length)


class _FloatSpacing:
    """Floats from ``start`` to ``stop``: the ends exact, the values between
    computed in decimal arithmetic and rounded once to a float."""

    __slots__ = ("start", "stop", "length")
    _kind = ""  # names the spacing in key()

    def __init__(self, start: Number, stop: Number) -> None:
        self.start, self.stop = _float_ends(start, stop)

    def value(self, i: int) -> float:
        """The ``i``-th value (``0 <= i < length``)."""
        last = self.length - 1
        if i == 0:
            return self.start
        if i == last:
            return self.stop
        with localcontext(_CONTEXT):
            return float(self._between(i, last))

    def _between(self, i: int, last: int) -> Decimal:
        raise NotImplementedError

    def key(self) -> tuple[object, ...]:
        """A summary that determines the values (for three or more of them)."""
        return (self._kind, self.start, self.stop, self.length)

    def _too_close(self, values: str) -> ValueError:
        return ValueError(
            f"{values} between {self.start!r} and {self.stop!r} are too close to be distinct floats"
        )


class LinearSpacing(_FloatSpacing):
    """Floats spread evenly from ``start`` to ``stop``, both ends included.

    ``num`` values, or ``round(|stop - start| / step) + 1`` of them; one value
    (``num=1``, or a step larger than twice the span) is just ``start``.

    >>> spacing = LinearSpacing(0, 1, None, num=5)
    >>> spacing.length, spacing.value(3)
    (5, 0.75)
    """

    __slots__ = ("_dstart", "_dstop")
    _kind = "linear"

    def __init__(self, start: Number, stop: Number, step: Number | None, num: int) -> None:
        """``step`` is None when ``num`` (at least 1) asks for that many values."""
        super().__init__(start, stop)
        self._dstart, self._dstop = _decimal(self.start), _decimal(self.stop)
        with localcontext(_CONTEXT):
            span = abs(self._dstop - self._dstart)
            if num:
                self.length = num
            else:
                ratio = span / _decimal(step or 1)
                self.length = int(ratio.to_integral_value(ROUND_HALF_EVEN)) + 1
                if self.length > MAX_LEN:
                    raise ValueError(TOO_MANY)
            if self.length < 2:
                return
            if span == 0:
                raise ValueError(
                    f"start and stop are both {self.start!r}, so {self.length} values would repeat"
                )
            gap = span / (self.length - 1)
            biggest = max(abs(self.start), abs(self.stop))
            if gap <= 2 * Decimal(math.ulp(biggest)):
                raise self._too_close(f"{self.length} values")

    def _between(self, i: int, last: int) -> Decimal:
        return self._dstart + (self._dstop - self._dstart) * i / last


class LogSpacing(_FloatSpacing):
    """``num >= 2`` floats spread evenly on a log scale between two positive ends.

    >>> spacing = LogSpacing(1e-3, 1e2, num=6)
    >>> [spacing.value(i) for i in range(spacing.length)]
    [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    """

    __slots__ = ("_exponents",)
    _kind = "log"

    def __init__(self, start: Number, stop: Number, num: int) -> None:
        """``num`` is 0 when the range was given a step (which a log range refuses)."""
        super().__init__(start, stop)
        if num < 2:
            raise ValueError(
                f"a log range needs num of at least 2, not {num}"
                if num
                else "a log range needs num (of at least 2), not a step"
            )
        if self.start <= 0 or self.stop <= 0:
            raise ValueError(
                f"a log range needs positive ends, not {self.start!r} and {self.stop!r}"
            )
        self.length = num
        dstart, dstop = _decimal(self.start), _decimal(self.stop)
        with localcontext(_CONTEXT):
            low = min(dstart, dstop)
            exp_start, exp_stop = dstart.log10(), dstop.log10()
            self._exponents = (exp_start, exp_stop)
            if num > MAX_LEN:
                raise ValueError(TOO_MANY)
            ratio = Decimal(10) ** (abs(exp_stop - exp_start) / (num - 1))
            growth = ratio - 1
            smallest_gap = low * growth
            if growth <= Decimal(2) ** -49 or smallest_gap <= 2 * Decimal(math.ulp(float(low))):
                raise self._too_close(f"{num} log-spaced values")

    def _between(self, i: int, last: int) -> Decimal:
        exp_start, exp_stop = self._exponents
        return Decimal(10) ** (exp_start + (exp_stop - exp_start) * i / last)


#: How a range spaces its values.
Spacing = IntSpacing | LinearSpacing | LogSpacing

"""Search spaces for optimize mode: Ivory range strings read as distributions.

In ``mode=optimize`` an Optuna sampler picks each job's values, so a range
string means a *space*, not a list:

==================  ==========================================================
``0_4``             every int from 0 to 4 (an int distribution)
``0_10_2``          ints from 0 to 10 in steps of 2
``0.0_1.0``         any float from 0.0 to 1.0
``0.0_1.0_0.1``     floats from 0.0 to 1.0 in steps of 0.1
``1e-5_1e-1.log``   any float from 1e-5 to 1e-1, log-uniform (no ``:num`` needed)
``1_1000.log``      ints from 1 to 1000, log-uniform
``1e-3_1e2:6.log``  one of the six listed values (``:num`` lists, as in the other modes)
==================  ==========================================================

Pure: the distributions are plain :class:`Interval` records here; the stores
turn them into Optuna's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivory_hydra.core.range_grammar import GRAMMAR, RANGE_PATTERN, parse_number
from ivory_hydra.core.range_spacing import Number
from ivory_hydra.core.ranges import Range


@dataclass(frozen=True)
class Interval:
    """A continuous or stepped span of numbers for a sampler to draw from.

    >>> Interval(0, 4, 1, is_int=True).describe()
    'int 0..4 step 1'
    """

    low: Number
    high: Number
    step: Number | None = None
    log: bool = False
    is_int: bool = False

    def describe(self) -> str:
        """A short human description.

        >>> Interval(1e-5, 0.1, log=True).describe()
        'float 1e-05..0.1 log'
        """
        text = f"{'int' if self.is_int else 'float'} {self.low}..{self.high}"
        if self.step is not None:
            text += f" step {self.step}"
        return text + (" log" if self.log else "")


def space_from_text(text: str) -> Interval | list[Number]:
    """What a range string means in optimize mode: an interval, or listed values.

    >>> space_from_text("0_4")
    Interval(low=0, high=4, step=1, log=False, is_int=True)
    >>> space_from_text("0.0_1.0_0.1")
    Interval(low=0.0, high=1.0, step=0.1, log=False, is_int=False)
    >>> space_from_text("1e-5_1e-1.log")
    Interval(low=1e-05, high=0.1, step=None, log=True, is_int=False)
    >>> space_from_text("5_1")  # the order of the ends does not matter
    Interval(low=1, high=5, step=1, log=False, is_int=True)
    >>> space_from_text("1e-3_1e-1:3.log")
    [0.001, 0.01, 0.1]
    >>> space_from_text("0_1e-5.log")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: invalid range string '0_1e-5.log': a log range needs positive ends, not 0 and ...
    """
    match = RANGE_PATTERN.fullmatch(text)
    if match is None:
        return list(Range(text))  # raises the grammar's ValueError
    if match["num"] is not None:
        return list(Range(text))
    start, stop = parse_number(match["start"]), parse_number(match["stop"])
    step = None if match["step"] is None else parse_number(match["step"])
    log = match["log"] is not None
    is_int = isinstance(start, int) and isinstance(stop, int) and isinstance(step, int | None)
    low, high = min(start, stop), max(start, stop)

    def bad(reason: str) -> ValueError:
        return ValueError(f"invalid range string {text!r}: {reason}; expected {GRAMMAR}")

    if low == high:
        raise bad(f"the interval from {low} to {high} is empty")
    if step is not None and step <= 0:
        raise bad(f"step must be positive, not {step}")
    if log:
        if low <= 0:
            raise bad(f"a log range needs positive ends, not {start} and {stop}")
        if step is not None and not (is_int and step == 1):
            raise bad("a log range takes no step")
    if is_int and step is None and not log:
        step = 1
    if is_int and log:
        step = 1
    if not is_int:
        low, high = float(low), float(high)
    return Interval(low, high, step, log, is_int)

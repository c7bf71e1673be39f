"""Tests for ivory_hydra.core.ranges (CONTRACT.md section 1)."""

from __future__ import annotations

import math
import re
import sys

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ivory_hydra.core.ranges import GRAMMAR, Range, is_range_string

# -- the seed (Ivory's "Multiple Runs" page) -------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((6,), {}, [0, 1, 2, 3, 4, 5, 6]),
        ((3, 6), {}, [3, 4, 5, 6]),
        ((3, 10, 2), {}, [3, 5, 7, 9]),
        ((3, 10), {"num": 4}, [3, 5, 8, 10]),
        ((0.0, 1.0, 0.25), {}, [0.0, 0.25, 0.5, 0.75, 1.0]),
        ((0.0, 1.0), {"num": 5}, [0.0, 0.25, 0.5, 0.75, 1.0]),
        ((1e-3, 1e2), {"num": 6, "log": True}, [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]),
        ((10, 3, 3), {}, [10, 7, 4]),
    ],
)
def test_seed_numeric(args, kwargs, expected):
    values = list(Range(*args, **kwargs))
    assert values == expected
    assert [type(v) for v in values] == [type(v) for v in expected]
    assert len(Range(*args, **kwargs)) == len(expected)


TABLE = [
    ("3-7", [3, 4, 5, 6, 7]),
    ("3-7-2", [3, 5, 7]),
    ("0.0-1.0:5", [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("1e-3_1e2:6.log", [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]),
    ("-3_3_2", [-3, -1, 1, 3]),
    ("2-8:4", [2, 4, 6, 8]),
]


@pytest.mark.parametrize(("text", "expected"), TABLE)
def test_contract_table(text, expected):
    r = Range(text)
    assert list(r) == expected
    assert [type(v) for v in r] == [type(v) for v in expected]
    assert is_range_string(text)
    assert repr(r) == f"Range({text!r})"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-3-3", [-3, -2, -1, 0, 1, 2, 3]),
        ("3--1", [3, 2, 1, 0, -1]),
        ("1e-3-1e-2:3", [0.001, 0.0055, 0.01]),
        ("3_-1", [3, 2, 1, 0, -1]),
        ("-3--1", [-3, -2, -1]),
        ("1E-3_1E-2:3", [0.001, 0.0055, 0.01]),
        ("+1-+3", [1, 2, 3]),
        (".5-1.5:3", [0.5, 1.0, 1.5]),
        ("1e+2-1e-2:5.log", [100.0, 10.0, 1.0, 0.1, 0.01]),
    ],
)
def test_ivory_crash_cases_parse(text, expected):
    assert list(Range(text)) == expected


def test_count_down():
    assert list(Range(10, 3, 3)) == [10, 7, 4]
    assert list(Range("10-3-3")) == [10, 7, 4]
    assert list(Range(1.0, 0.0, num=5)) == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert list(Range(10, 3, num=3)) == [10, 6, 3]  # 6.5 rounds half to even
    assert list(Range(-3)) == [0, -1, -2, -3]


def test_clean_floats():
    assert 0.6 in list(Range("0-1-0.2"))
    assert list(Range("0-1-0.2")) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    tenths = list(Range(0.0, 1.0, 0.1))
    assert tenths[3] == 0.3
    assert tenths == [i / 10 for i in range(11)]
    assert list(Range(0.1, 0.7, num=4)) == [0.1, 0.3, 0.5, 0.7]
    assert list(Range(100.0, 0.01, num=5, log=True)) == [100.0, 10.0, 1.0, 0.1, 0.01]
    assert list(Range(2.0, 32.0, num=5, log=True)) == [2.0, 4.0, 8.0, 16.0, 32.0]


def test_float_step_spreads_evenly():
    # num = round(|stop - start| / step) + 1 values, both ends included.
    assert list(Range(0.0, 1.0, 0.3)) == [0.0, 1 / 3, 2 / 3, 1.0]
    assert list(Range(0, 1, 0.25)) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert list(Range(0.0, 1.0, 5.0)) == [0.0]


def test_int_num_never_duplicates():
    with pytest.raises(ValueError, match="distinct integers"):
        Range("0-1:5")
    with pytest.raises(ValueError, match="distinct integers"):
        Range(0, 1, num=5)
    assert list(Range("0-4:5")) == [0, 1, 2, 3, 4]
    assert list(Range("0-1:2")) == [0, 1]
    assert list(Range(0.0, 1.0, num=5)) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_single_values():
    assert list(Range("3-3")) == [3]
    assert list(Range("0-1:1")) == [0]
    assert list(Range(0.5, 1.0, num=1)) == [0.5]
    assert list(Range(2.0, 2.0)) == [2.0]


def test_log_values_are_floats():
    r = Range("1-1000:4.log")
    assert list(r) == [1.0, 10.0, 100.0, 1000.0]
    assert not r.is_int
    assert r.log


def test_repr_shows_how_it_was_built():
    assert repr(Range(6)) == "Range(6)"
    assert repr(Range(3, 10, 2)) == "Range(3, 10, step=2)"
    assert repr(Range(3, 10, num=4)) == "Range(3, 10, num=4)"
    assert repr(Range(0, 1, 1.0)) == "Range(0, 1, step=1.0)"
    assert repr(Range(1e-3, 1e2, num=6, log=True)) == "Range(0.001, 100.0, num=6, log=True)"
    assert repr(Range("1e-3_1e2:6.log")) == "Range('1e-3_1e2:6.log')"
    for r in [Range(6), Range(0, 1, 1.0), Range(1e-3, 1e2, num=6, log=True)]:
        assert eval(repr(r)) == r


def test_sequence_protocol():
    r = Range(3, 10, 2)
    assert r[0] == 3
    assert r[-1] == 9
    assert r[1:3] == [5, 7]
    with pytest.raises(IndexError):
        r[4]
    assert Range(6) == Range("0-6") == Range(0, 6, num=7)
    assert Range(0, 1) != Range(0.0, 1.0)
    assert Range(0, 1) != [0, 1]
    assert hash(Range(6)) == hash(Range("0_6"))
    assert len(Range(0, 10**15)) == 10**15 + 1  # lazy


def test_properties():
    r = Range(3, 10, 2)
    assert (r.start, r.stop, r.step, r.num, r.log, r.is_int) == (
        3,
        10,
        2,
        None,
        False,
        True,
    )
    r = Range("1e-3_1e2:6.log")
    assert (r.start, r.stop, r.step, r.num, r.log, r.is_int) == (
        0.001,
        100.0,
        None,
        6,
        True,
        False,
    )
    assert Range(3, 10, num=4).spec == "3_10:4"
    assert Range("3--1").spec == "3_-1"
    assert Range(0, 1, 0.2).spec == "0.0_1.0_0.2"


def test_is_range_string():
    for text in ["3-7", "1e-3_1e2:6.log", "2020-06", "3-7-0", "3-7-2:3"]:
        assert is_range_string(text), text
    for text in ["3", "1e-3", "abc", "", " 3-7", "3-7 ", "1-2-3-4", "nan-1", None]:
        assert not is_range_string(text), text


# -- malformed input -------------------------------------------------------

NO_MATCH = "does not match the grammar"
STEP_SIZE = "step must be positive (it is a size; a start above stop counts down), not "
LOG_STEP = "a log range needs num (of at least 2), not a step"
LOG_ENDS = "a log range needs positive ends, not "
TOO_MANY = f"too many values (more than {sys.maxsize})"


def _huge_int_reason() -> str:
    """Why 5000 digits are refused: Python's own limit on int(), unless it is lifted."""
    try:
        int("1" * 5000)
    except ValueError as error:
        return str(error)
    return TOO_MANY


#: Malformed strings and why each is refused (the start of the reason).
MALFORMED = [
    ("abc", NO_MATCH),
    ("3-7-2:3", "give a step or a num, not both"),
    ("1-2-3-4", NO_MATCH),
    ("3-7-0", STEP_SIZE + "0"),
    ("3_7_0.0", STEP_SIZE + "0.0"),
    ("1e-3_1e2:1.log", "a log range needs num of at least 2, not 1"),
    ("1e-3_1e2:0.log", "num must be at least 1, not 0"),
    ("1e-3_1e2.log", LOG_STEP),
    ("1-100-2.log", LOG_STEP),
    ("0_1e2:3.log", LOG_ENDS + "0.0 and 100.0"),
    ("-1_1e2:3.log", LOG_ENDS + "-1.0 and 100.0"),
    ("1e-3_-1:3.log", LOG_ENDS + "0.001 and -1.0"),
    ("nan-1", NO_MATCH),
    ("1-nan", NO_MATCH),
    ("inf-1", NO_MATCH),
    ("1-inf", NO_MATCH),
    ("1e999-1", "start must be finite, not inf"),
    ("1-1e999", "stop must be finite, not inf"),
    ("0-1-1e999", "step must be finite, not inf"),
    ("", NO_MATCH),
    ("0-1:0", "num must be at least 1, not 0"),
    ("3-7--2", STEP_SIZE + "-2"),
    ("0-1:5", "num=5 asks for more distinct integers than the 2 from 0 to 1"),
    ("1.0-1.0:3", "start and stop are both 1.0, so 3 values would repeat"),
    ("3", NO_MATCH),
    ("3-", NO_MATCH),
    ("-3", NO_MATCH),
    ("3-7:", NO_MATCH),
    ("3-7.log.log", NO_MATCH),
    ("3..5-7", NO_MATCH),
    ("5.-7", NO_MATCH),
    (" 3-7", NO_MATCH),
    ("3 - 7", NO_MATCH),
    ("0-99999999999999999999999", TOO_MANY),
    ("0-1e300", TOO_MANY),
    ("1e17-1.00000000000000001e17:3", "start and stop are both 1e+17, so 3 values would repeat"),
    ("1" * 5000 + "-1", _huge_int_reason()),
]


def shown(text: str) -> str:
    """How an error names the string: its repr, cut at 200 characters."""
    if len(text) <= 200:
        return repr(text)
    return repr(text[:200]) + f"... ({len(text)} characters)"


def assert_refused(text: str, reason: str) -> None:
    """``Range(text)`` raises ValueError naming the string, its ``reason`` and the grammar."""
    with pytest.raises(ValueError) as info:
        Range(text)
    message = str(info.value)
    assert message.startswith(f"invalid range string {shown(text)}: {reason}"), message
    assert message.endswith(f"; expected {GRAMMAR}"), message


@pytest.mark.parametrize(("text", "reason"), MALFORMED, ids=lambda t: t[:30])
def test_malformed_strings(text, reason):
    assert_refused(text, reason)


@pytest.mark.parametrize(
    ("args", "kwargs", "reason"),
    [
        ((0, 1, 0), {}, STEP_SIZE + "0"),
        ((0, 1, -1), {}, STEP_SIZE + "-1"),
        ((0, 1, 0.0), {}, STEP_SIZE + "0.0"),
        ((float("nan"),), {}, "stop must be finite, not nan"),
        ((0, float("inf")), {}, "stop must be finite, not inf"),
        ((0, 1, float("nan")), {}, "step must be finite, not nan"),
        ((True,), {}, "stop must be an int or a float, not True"),
        ((0, True), {}, "stop must be an int or a float, not True"),
        ((0, 3), {"num": True}, "num must be an int, not True"),
        ((0, 3), {"num": -1}, "num must be positive, not -1"),
        ((0, 3), {"num": 2.0}, "num must be an int, not 2.0"),
        (("x",), {}, "invalid range string 'x': " + NO_MATCH),
        ((None,), {}, "stop must be an int or a float, not None"),
        ((0, "3"), {}, "stop must be an int or a float, not '3'"),
        ((0, 10, 2), {"num": 3}, "give a step or a num, not both"),
        ((1, 100), {"log": True}, LOG_STEP),
        ((1, 100), {"num": 1, "log": True}, "a log range needs num of at least 2, not 1"),
        ((0.0, 100.0), {"num": 3, "log": True}, LOG_ENDS + "0.0 and 100.0"),
        ((-1.0, 100.0), {"num": 3, "log": True}, LOG_ENDS + "-1.0 and 100.0"),
        (("3-7", 9), {}, "Range('3-7', ...): a range string takes no other arguments"),
        (("3-7",), {"num": 2}, "Range('3-7', ...): a range string takes no other arguments"),
        ((10**400, 10**400 + 1, 0.5), {}, f"{10**400!r} to {10**400 + 1!r} is out of the float"),
    ],
    ids=lambda v: repr(v)[:30],
)
def test_numeric_constructor_validation(args, kwargs, reason):
    with pytest.raises(ValueError) as info:
        Range(*args, **kwargs)
    assert str(info.value).startswith(reason), str(info.value)


# -- properties --------------------------------------------------------------

small_ints = st.integers(min_value=-1000, max_value=1000)
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@st.composite
def int_ranges(draw: st.DrawFn) -> Range:
    start, stop = draw(small_ints), draw(small_ints)
    if draw(st.booleans()):
        return Range(start, stop, draw(st.integers(min_value=1, max_value=50)))
    num = draw(st.integers(min_value=1, max_value=abs(stop - start) + 1))
    return Range(start, stop, num=num)


@st.composite
def float_ranges(draw: st.DrawFn) -> Range:
    start, stop = draw(finite), draw(finite)
    try:
        if draw(st.booleans()):
            step = draw(
                st.floats(min_value=1e-3, max_value=1e6, allow_nan=False).filter(
                    lambda s: abs(stop - start) / s < 100
                )
            )
            return Range(start, stop, step)
        return Range(start, stop, num=draw(st.integers(1, 100)))
    except ValueError:
        assume(False)
        raise


@st.composite
def log_ranges(draw: st.DrawFn) -> Range:
    positive = st.floats(min_value=1e-300, max_value=1e300)
    start, stop = draw(positive), draw(positive)
    try:
        return Range(start, stop, num=draw(st.integers(2, 100)), log=True)
    except ValueError:
        assume(False)
        raise


any_range = st.one_of(int_ranges(), float_ranges(), log_ranges())


@settings(max_examples=200, deadline=None)
@given(any_range)
def test_spec_round_trips(r):
    again = Range(r.spec)
    assert again == r
    assert list(again) == list(r)
    assert [type(v) for v in again] == [type(v) for v in r]
    assert is_range_string(r.spec)


@settings(max_examples=200, deadline=None)
@given(any_range)
def test_repr_round_trips(r):
    assert eval(repr(r)) == r


@settings(max_examples=200, deadline=None)
@given(any_range)
def test_ends_included(r):
    values = list(r)
    assert len(values) == len(r)
    assert values[0] == r.start
    if r.is_int and r.step is not None:
        span = abs(r.stop - r.start)
        if span % r.step == 0:
            assert values[-1] == r.stop
        else:
            assert abs(values[-1] - r.start) <= span
    elif len(values) > 1:
        assert values[-1] == r.stop


@settings(max_examples=200, deadline=None)
@given(any_range)
def test_values_strictly_monotonic(r):
    values = list(r)
    if r.is_int:
        assert all(isinstance(v, int) for v in values)
    else:
        assert all(isinstance(v, float) and math.isfinite(v) for v in values)
    pairs = list(zip(values, values[1:], strict=False))
    if r.stop >= r.start:
        assert all(a < b for a, b in pairs)
    else:
        assert all(a > b for a, b in pairs)
    assert len(set(values)) == len(values)


#: The contract's grammar (section 1), written here on its own: a number is
#: [+-]?(digits[.digits]|.digits)([eE][+-]?digits)?, ASCII digits only.
NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
GRAMMATICAL = re.compile(
    rf"({NUMBER})[-_]({NUMBER})(?:[-_]({NUMBER}))?(?::([0-9]+))?(\.log)?", re.ASCII
)


def number(text: str) -> int | float:
    """A number of the grammar: an int without '.' or an exponent, else a float."""
    return int(text) if re.fullmatch(r"[+-]?[0-9]+", text, re.ASCII) else float(text)


def assert_means(
    text: str, start: str, stop: str, step: str | None, num: str | None, log: bool
) -> None:
    """``Range(text)`` is exactly the range of its parts, or refused for exactly its reason.

    The parts' meaning is the numeric constructor's (checked value by value
    above): ``Range(start, stop, step, num=num, log=log)`` with the numbers read
    as the grammar reads them. A step and a num together, or a num below 1,
    are refused by the string form itself.
    """
    reason = None
    if step is not None and num is not None:
        reason = "give a step or a num, not both"
    elif num is not None and int(num) < 1:
        reason = f"num must be at least 1, not {int(num)}"
    else:
        try:
            expected = Range(
                number(start),
                number(stop),
                1 if step is None else number(step),
                num=0 if num is None else int(num),
                log=log,
            )
        except (ValueError, ArithmeticError) as error:
            reason = str(error)
    if reason is not None:
        assert_refused(text, reason)
        return
    r = Range(text)
    assert len(r) == len(expected)
    positions = range(len(r)) if len(r) <= 300 else [*range(100), *range(len(r) - 100, len(r))]
    values = [r[i] for i in positions]
    assert values == [expected[i] for i in positions]
    assert [type(v) for v in values] == [type(expected[i]) for i in positions]
    assert r == expected and r.spec == expected.spec


def assert_any_text(text: str) -> None:
    """Grammatical text means its parts (:func:`assert_means`); any other text is refused."""
    match = GRAMMATICAL.fullmatch(text)
    assert is_range_string(text) == (match is not None)
    if match is None:
        assert_refused(text, NO_MATCH)
    else:
        start, stop, step, num, log = match.groups()
        assert_means(text, start, stop, step, num, log is not None)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("-3-3", ("-3", "3", None, None, False)),
        ("3--1", ("3", "-1", None, None, False)),
        ("1e-3-1e-2:3", ("1e-3", "1e-2", None, "3", False)),
        ("1e-3_1e2:6.log", ("1e-3", "1e2", None, "6", True)),
        ("-3_3_2", ("-3", "3", "2", None, False)),
        ("+1-+3", ("+1", "+3", None, None, False)),
        (".5-1.5-.5", (".5", "1.5", ".5", None, False)),
        ("0-1e300", ("0", "1e300", None, None, False)),
    ],
)
def test_the_oracle_reads_the_contracts_strings(text, parts):
    match = GRAMMATICAL.fullmatch(text)
    assert match is not None
    start, stop, step, num, log = match.groups()
    assert (start, stop, step, num, log is not None) == parts
    assert_means(text, *parts)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_is_its_range_or_refused_with_its_reason(text):
    assert_any_text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789-_.:eEloginfa+ ", max_size=30))
def test_range_like_text_is_its_range_or_refused_with_its_reason(text):
    assert_any_text(text)


number_text = st.from_regex(
    r"\A[+-]?([0-9]{1,4}(\.[0-9]{1,3})?|\.[0-9]{1,3})([eE][+-]?[0-9]{1,3})?\Z"
)


@settings(max_examples=300, deadline=None)
@given(
    number_text,
    st.sampled_from("-_"),
    number_text,
    st.one_of(
        st.tuples(st.just(None), st.just(None)),
        st.tuples(st.tuples(st.sampled_from("-_"), number_text), st.just(None)),
        st.tuples(st.just(None), st.integers(0, 400).map(str)),
        st.tuples(st.tuples(st.sampled_from("-_"), number_text), st.integers(0, 400).map(str)),
    ),
    st.booleans(),
)
@example("0", "-", "1", (None, "0"), False)  # num 0: refused by the string form
@example("1e-3", "_", "1e2", (None, "1"), True)  # log num 1
@example("1e-3", "-", "1e-2", (None, "3"), True)
@example("3", "-", "-1", (("-", "1"), None), False)  # '3--1-1'
@example("-3", "_", "3", (("_", "0"), None), False)  # step 0
@example("0", "-", "1", (("-", "0.25"), "5"), False)  # a step and a num
@example("+1", "-", "+3", (None, "3"), False)
@example("10", "_", "3", (("_", "3"), None), False)  # counts down
def test_grammar_shaped_text_is_exactly_its_parts(start, sep, stop, tail, log):
    (step_sep, step), num = tail if tail[0] is not None else ((None, None), tail[1])
    text = (
        f"{start}{sep}{stop}"
        + ("" if step is None else f"{step_sep}{step}")
        + ("" if num is None else f":{num}")
        + (".log" if log else "")
    )
    assert is_range_string(text)
    assert_means(text, start, stop, step, num, log)

"""Tests for ivory_hydra.core.ranges (CONTRACT.md section 1)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
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

MALFORMED = [
    "abc",
    "3-7-2:3",
    "1-2-3-4",
    "3-7-0",
    "3_7_0.0",
    "1e-3_1e2:1.log",
    "1e-3_1e2:0.log",
    "1e-3_1e2.log",
    "1-100-2.log",
    "0_1e2:3.log",
    "-1_1e2:3.log",
    "1e-3_-1:3.log",
    "nan-1",
    "1-nan",
    "inf-1",
    "1-inf",
    "1e999-1",
    "1-1e999",
    "0-1-1e999",
    "",
    "0-1:0",
    "3-7--2",
    "0-1:5",
    "1.0-1.0:3",
    "3",
    "3-",
    "-3",
    "3-7:",
    "3-7.log.log",
    "3..5-7",
    "5.-7",
    " 3-7",
    "3 - 7",
    "0-99999999999999999999999",
    "0-1e300",
    "1e17-1.00000000000000001e17:3",
    "1" * 5000 + "-1",
]


@pytest.mark.parametrize("text", MALFORMED, ids=lambda t: t[:30])
def test_malformed_strings(text):
    with pytest.raises(ValueError) as info:
        Range(text)
    message = str(info.value)
    assert repr(text[:200]) in message
    assert GRAMMAR in message


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0, 1, 0), {}),
        ((0, 1, -1), {}),
        ((0, 1, 0.0), {}),
        ((float("nan"),), {}),
        ((0, float("inf")), {}),
        ((0, 1, float("nan")), {}),
        ((True,), {}),
        ((0, True), {}),
        ((0, 3), {"num": True}),
        ((0, 3), {"num": -1}),
        ((0, 3), {"num": 2.0}),
        (("x",), {}),
        ((None,), {}),
        ((0, "3"), {}),
        ((0, 10, 2), {"num": 3}),
        ((1, 100), {"log": True}),
        ((1, 100), {"num": 1, "log": True}),
        ((0.0, 100.0), {"num": 3, "log": True}),
        ((-1.0, 100.0), {"num": 3, "log": True}),
        (("3-7", 9), {}),
        (("3-7",), {"num": 2}),
        ((10**400, 10**400 + 1, 0.5), {}),
    ],
)
def test_numeric_constructor_validation(args, kwargs):
    with pytest.raises(ValueError):
        Range(*args, **kwargs)


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


def _check_any_text(text: str) -> None:
    try:
        r = Range(text)
    except ValueError as error:
        if len(text) <= 200:
            assert repr(text) in str(error)
        assert GRAMMAR in str(error)
        return
    assert is_range_string(text)
    if len(r) <= 300:
        values = list(r)
        assert len(values) == len(r)
    assert Range(r.spec) == r


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_works_or_raises_value_error(text):
    _check_any_text(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789-_.:eEloginfa+ ", max_size=30))
def test_range_like_text_works_or_raises_value_error(text):
    _check_any_text(text)


number_text = st.from_regex(
    r"\A[+-]?([0-9]{1,4}(\.[0-9]{1,3})?|\.[0-9]{1,3})([eE][+-]?[0-9]{1,3})?\Z"
)


@settings(max_examples=200, deadline=None)
@given(
    number_text,
    st.sampled_from("-_"),
    number_text,
    st.one_of(
        st.just(""),
        st.builds(lambda s, n: s + n, st.sampled_from("-_"), number_text),
        st.builds(lambda n: f":{n}", st.integers(0, 400)),
    ),
    st.sampled_from(["", ".log"]),
)
def test_grammar_shaped_text_works_or_raises_value_error(start, sep, stop, tail, log):
    text = f"{start}{sep}{stop}{tail}{log}"
    assert is_range_string(text)
    _check_any_text(text)

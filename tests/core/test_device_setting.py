"""The devices setting, the choice among free devices and CUDA's string (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivory_hydra.core.devices import (
    check_devices,
    check_per_job,
    choose,
    cuda_string,
    jobs_at_once,
    visible_ids,
)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0, 0], "devices: device 0 is listed twice in [0, 0]"),
        ([1, 2, 1], "devices: device 1 is listed twice in [1, 2, 1]"),
        ([-1], "devices: -1 is not a device id"),
        ([0, 1.5], "devices: 1.5 is not a device id"),
        ([True], "devices: True is not a device id"),
        (["0"], "devices: '0' is not a device id"),
        ("gpu", "devices: give a list of device ids ([0,1]), auto or null, not gpu"),
        (3, "devices: give a list of device ids ([0,1]), auto or null, not 3"),
        ([], "devices: an empty list"),
    ],
)
def test_bad_devices_name_the_setting(value, message):
    with pytest.raises(ValueError) as error:
        check_devices(value)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("per_job", "pool", "message"),
    [
        (0, (0, 1), "devices_per_job: must be an int >= 1, not 0"),
        (-2, None, "devices_per_job: must be an int >= 1, not -2"),
        (3, (0, 1), "devices_per_job: 3 is more than the 2 devices in [0, 1]"),
    ],
)
def test_bad_devices_per_job_name_the_setting(per_job, pool, message):
    with pytest.raises(ValueError, match=r"^devices_per_job: ") as error:
        check_per_job(per_job, pool)
    assert str(error.value) == message


def test_good_settings():
    assert check_devices((3, 1)) == (3, 1)
    assert check_per_job(2, (3, 1)) == 2
    assert cuda_string((3, 1)) == "3,1"
    assert jobs_at_once((0, 1, 2), 2) == 1
    assert visible_ids(8, "6,7,9") == (6, 7)


pools = st.lists(st.integers(0, 15), min_size=1, max_size=8, unique=True)


@given(data=st.data(), pool=pools)
def test_choose_takes_free_devices_of_the_pool_last_ones_first(data, pool):
    free = data.draw(st.sets(st.sampled_from(pool)))
    count = data.draw(st.integers(1, len(pool)))
    last = data.draw(st.lists(st.sampled_from(pool), unique=True, max_size=count))
    picked = choose(pool, free, count, last)
    if len(free) < count:
        assert picked is None
        return
    assert picked is not None and len(picked) == count and len(set(picked)) == count
    assert set(picked) <= free
    kept = [d for d in last if d in free]
    assert list(picked[: len(kept)]) == kept  # what the process held, when free, first


@given(data=st.data(), pool=pools)
def test_pinned_takes_exactly_the_last_devices_or_nothing(data, pool):
    free = data.draw(st.sets(st.sampled_from(pool)))
    last = data.draw(st.lists(st.sampled_from(pool), unique=True, min_size=1))
    picked = choose(pool, free, len(last), last, pinned=True)
    assert picked == (tuple(last) if set(last) <= free else None)

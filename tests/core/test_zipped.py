"""Zipped dimensions in plans: a row is one value of its dimension, a point holds its members."""

import pytest

from ivory_hydra.core.plan import Plan, split_repeats
from ivory_hydra.core.zipped import ZipError, check_zips, flatten, members_of, rows_of

ARCH = [("model", ["resnet", "vit"]), ("lr", [0.1, 0.01])]


def test_rows_pair_the_ith_value_of_every_member():
    rows = rows_of("arch", ARCH)
    assert [r.as_dict() for r in rows] == [
        {"model": "resnet", "lr": 0.1},
        {"model": "vit", "lr": 0.01},
    ]
    assert [r.label for r in rows] == ["model=resnet lr=0.1", "model=vit lr=0.01"]
    assert [r.index for r in rows] == [0, 1]


def test_a_product_crosses_the_rows_with_the_other_dimensions_and_never_shows_the_name():
    plan = Plan("product", {"bs": 32}, {"arch": rows_of("arch", ARCH), "seed": [0, 1]})
    assert plan.total == 4
    assert [p.params for p in plan.points(0)] == [
        {"bs": 32, "model": "resnet", "lr": 0.1, "seed": 0},
        {"bs": 32, "model": "resnet", "lr": 0.1, "seed": 1},
        {"bs": 32, "model": "vit", "lr": 0.01, "seed": 0},
        {"bs": 32, "model": "vit", "lr": 0.01, "seed": 1},
    ]


def test_a_chain_steps_a_zipped_dimension_as_one_param_and_its_winner_fixes_every_member():
    rows = rows_of("arch", ARCH)
    plan = Plan("chain", {}, {"arch": rows, "seed": [0, 1]})
    assert plan.num_steps == 2 and plan.stepping(0) == "arch" and plan.size(0) == 2
    assert [p.params for p in plan.points(0)] == [
        {"model": "resnet", "lr": 0.1},
        {"model": "vit", "lr": 0.01},
    ]
    later = [p.params for p in plan.points(1, {"arch": rows[1]})]
    assert later == [
        {"seed": 0, "model": "vit", "lr": 0.01},
        {"seed": 1, "model": "vit", "lr": 0.01},
    ]


def test_a_single_row_is_a_fixed_value_and_rows_may_be_the_repeats():
    [row] = rows_of("arch", [("model", ["vit"]), ("lr", [0.1])])
    plan = Plan("optimize", {"arch": row}, {}, trials=3)
    assert plan.point(0, 2).params == {"model": "vit", "lr": 0.1}
    rest, repeats = split_repeats(
        {"pair": rows_of("pair", [("fold", [0, 1]), ("seed", [7, 8])])}, ["pair"]
    )
    assert rest == {} and [flatten(r) for r in repeats] == [
        {"fold": 0, "seed": 7},
        {"fold": 1, "seed": 8},
    ]


def test_members_of_lists_each_member_in_its_dimensions_place():
    swept = {"seed": [0, 1], "arch": rows_of("arch", ARCH), "bs": [8, 16]}
    assert list(members_of(swept)) == [
        ("seed", [0, 1]),
        ("model", ["resnet", "vit"]),
        ("lr", [0.1, 0.01]),
        ("bs", [8, 16]),
    ]


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([], "the zip is empty"),
        ([("model", ["resnet"])], "it has one member (model)"),
        ([("lr", [1, 2]), ("lr", [3, 4])], "member 'lr' is given twice"),
        ([("model", ["a", "b"]), ("lr", [])], "member 'lr' has no values"),
        ([("model", ["a", "b", "c"]), ("lr", [1, 2])], "model has 3 values, lr has 2 values"),
    ],
)
def test_bad_rows_name_the_dimension(members, problem):
    with pytest.raises(ZipError, match="zipped dimension 'arch': ") as caught:
        rows_of("arch", members)
    assert problem in str(caught.value)
    assert caught.value.dimension == "arch"


@pytest.mark.parametrize(
    ("zips", "params", "repeat", "problem"),
    [
        ({"arch": ["model", "lr"]}, {"lr": True}, (), "member 'lr' is also swept on its own"),
        ({"arch": ["model", "lr"]}, {"lr": False}, (), "member 'lr' is also set on its own"),
        (
            {"arch": ["model", "lr"], "pair": ["lr", "bs"]},
            {},
            (),
            "member 'lr' is also a member of 'arch'",
        ),
        ({"arch": ["model", "lr"]}, {}, ("model",), "member 'model' is named in repeat"),
        ({"db.arch": ["model", "lr"]}, {}, (), "its name must be a plain identifier"),
        ({"arch": ["model", "c"], "c": ["x", "y"]}, {}, (), "a member of a zip has this name"),
    ],
)
def test_zips_that_clash_with_the_other_params_name_the_dimension(zips, params, repeat, problem):
    with pytest.raises(ZipError) as caught:
        check_zips(zips, params, repeat)
    assert problem in str(caught.value)


def test_a_dimension_named_as_a_config_key_is_refused():
    with pytest.raises(ZipError, match="'model' is a config key or group"):
        check_zips({"model": ["a", "b"]}, {}, is_config_key=lambda name: name == "model")
    check_zips({"arch": ["a", "b"]}, {"seed": True}, ("seed",), lambda name: name == "model")

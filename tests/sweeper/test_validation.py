"""Fail-fast validation: which params are config groups, and what each value costs to check.

A real Hydra config loader (``initialize_config_dir``) over a config folder
written here: a group ``db``, a nested group ``outer/inner`` and plain values.
"""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode

from ivory_hydra.sweeper.composition import ComposeOnceLoader
from ivory_hydra.sweeper.errors import InvalidOverrideError
from ivory_hydra.sweeper.overrides import SweepParam, SweepValue
from ivory_hydra.sweeper.validation import is_config_group, validate_sweep

FILES = {
    "config.yaml": (
        "defaults:\n  - db: a\n  - outer/inner: x\n  - _self_\n\na: 0\nnested:\n  x: 1\n"
    ),
    "db/a.yaml": "host: a\n",
    "db/b.yaml": "host: b\n",
    "outer/inner/x.yaml": "size: 1\n",
    "outer/inner/y.yaml": "size: 2\n",
}


@pytest.fixture
def loader(tmp_path):
    conf = tmp_path / "conf"
    for name, text in FILES.items():
        (conf / name).parent.mkdir(parents=True, exist_ok=True)
        (conf / name).write_text(text)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="validation"):
        yield GlobalHydra.instance().config_loader()


def param(key: str, *texts: str) -> SweepParam:
    return SweepParam(key, tuple(SweepValue(t, t) for t in texts))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("db", True),
        ("db@backup", True),
        ("outer/inner", True),
        ("outer", True),
        ("hydra/launcher", True),
        ("a", False),
        ("nested", False),
        ("nested.x", False),
        ("inner", False),
        ("outer/nope", False),
        ("db/a", False),
    ],
)
def test_config_groups_are_told_from_values(loader, name, expected):
    assert is_config_group(loader, name) is expected
    assert is_config_group(ComposeOnceLoader(loader), name) is expected


def test_each_group_value_is_composed_and_each_plain_value_applied(loader):
    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    params = [
        param("db", "a", "b"),
        param("a", "1", "2", "3"),
        param("outer/inner", "x", "y"),
        param("nested.x", "5", "6"),
    ]
    # the first values once, then one composition per further group value
    assert validate_sweep(loader, master, params) == 3


def test_a_value_the_config_refuses_names_its_override(loader):
    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    with pytest.raises(InvalidOverrideError, match=r"override 'nested=\{z: 3\}' is not accepted"):
        validate_sweep(loader, master, [param("a", "1", "2"), param("nested", "{x: 2}", "{z: 3}")])
    with pytest.raises(InvalidOverrideError, match="overrides 'db=c' are not accepted"):
        validate_sweep(loader, master, [param("db", "a", "c")])


def test_a_loader_that_cannot_list_groups_composes_every_value(loader):
    class Unlisting(ComposeOnceLoader):
        def list_groups(self, parent_name: str) -> list[str]:
            raise NotImplementedError

    master = loader.load_configuration("config", [], RunMode.MULTIRUN)
    assert is_config_group(Unlisting(loader), "a")
    assert validate_sweep(Unlisting(loader), master, [param("a", "1", "2", "3")]) == 3

"""The generated parts of the docs: every setting described, names and layers from the code."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_setting_has_a_description(hooks):
    from ivory_hydra.sweeper.settings import SweeperSettings

    rows = hooks.rows(SweeperSettings)
    names = [name for name, _, _ in rows]
    assert names[:2] == ["mode", "use_best_param"]
    assert {"mlflow.enabled", "mlflow.tracking_uri", "mlflow.experiment_name"} <= set(names)
    assert "mlflow" not in names  # the nested dataclass is flattened
    assert all(text for _, _, text in rows)
    table = hooks.settings_table()
    assert "| `repeat` | `[]` |" in table
    assert "| `storage_retry` | `300.0` |" in table
    assert "| `mlflow.enabled` | `true` |" in table


def test_a_setting_without_a_description_stops_the_build(hooks):
    @dataclasses.dataclass
    class Settings:
        described: int = 1
        """A field with its description."""
        bare: int = 2

    with pytest.raises(hooks.MissingDescription, match="hydra.sweeper.bare has no description"):
        hooks.rows(Settings)


def test_stored_names_come_from_the_format_module(hooks):
    from ivory_hydra.stores.format import StudyAttr, Tag

    table = hooks.names_table("StudyAttr")
    for name, value in vars(StudyAttr).items():
        if name.isupper():
            assert f"`{value}`" in table
    assert "`ivory.overrides`" in hooks.names_table("Tag")
    assert f"`{Tag.PREFIX}`" not in hooks.names_table("Tag")  # a prefix, not a name


def test_the_architecture_figures_are_the_import_contracts(hooks):
    layers, container = hooks.layers_of("The engine's parts")
    assert container == "ivory_hydra.engine"
    assert layers[0] == ["opening"] and layers[1] == ["engine"]
    figure = hooks.layers_figure("Front ends")
    assert figure.startswith("```mermaid") and '"sweeper"' in figure and '"core"' in figure
    page = (ROOT / "docs" / "explanation" / "architecture.md").read_text()
    assert "<!-- layers figure: Front ends -->" in page
    assert "<!-- layers figure: The engine's parts -->" in page

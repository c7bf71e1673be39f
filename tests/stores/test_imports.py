"""The store modules import each other without a circle (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import ivory_hydra.stores

STORES = Path(ivory_hydra.stores.__file__).parent
PREFIX = "ivory_hydra.stores."


def imports_of(path: Path) -> set[str]:
    """The store modules that ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "ivory_hydra.stores":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith(PREFIX):
                found.add(node.module[len(PREFIX) :].split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(
                a.name[len(PREFIX) :].split(".")[0] for a in node.names if a.name.startswith(PREFIX)
            )
    return found - {path.stem}


def test_no_import_circle_among_the_stores():
    graph = {path.stem: imports_of(path) for path in STORES.glob("*.py")}
    assert "optuna_storage" in graph["ledger"]  # ledger_for opens the storage...
    assert "ledger" not in graph["optuna_storage"]  # ...which no longer imports the ledger
    circles = []

    def visit(module: str, trail: list[str]) -> None:
        for imported in sorted(graph.get(module, ())):
            if imported in trail:
                circles.append(" -> ".join([*trail[trail.index(imported) :], imported]))
            else:
                visit(imported, [*trail, imported])

    for module in sorted(graph):
        visit(module, [module])
    assert not circles, circles

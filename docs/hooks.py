"""MkDocs hooks: the reference tables, generated from the code they describe.

A page that holds the line ``<!-- hydra.sweeper settings -->`` gets, in its
place, a table of every ``hydra.sweeper.*`` field of
:class:`ivory_hydra.sweeper.settings.SweeperSettings` (nested dataclasses such
as ``mlflow`` flattened as ``mlflow.<field>``), with its default and the
docstring written under the field. A field without a docstring stops the build.

A page that holds ``<!-- stored names: StudyAttr -->`` (or ``TrialAttr``,
``Tag``, ``Files``) gets the names of that class of
:mod:`ivory_hydra.stores.format`, each with its meaning: for attributes, from
the tables of that module's docstring (a name missing there stops the build);
for tags and files, from the comments beside them.

A page that holds ``<!-- layers figure: <contract name> -->`` gets a mermaid
figure of that import-linter layers contract of ``pyproject.toml``, so that the
architecture page draws the layers that ``make lint`` enforces.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import textwrap
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

PLACEHOLDER = "<!-- hydra.sweeper settings -->"


class MissingDescription(PluginError):
    """A settings field has no docstring to show in the reference."""


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def default_of(field: dataclasses.Field) -> str:
    """A field's default as YAML would write it."""
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value: Any = field.default_factory()  # type: ignore[misc]
    else:
        value = field.default
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def rows(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """``(name, default, description)`` of every field, nested dataclasses flattened."""
    docs = field_docs(cls)
    found = []
    for field in dataclasses.fields(cls):
        factory = field.default_factory  # type: ignore[misc]
        if factory is not dataclasses.MISSING and dataclasses.is_dataclass(factory):
            found.extend(rows(factory, f"{prefix}{field.name}."))  # type: ignore[arg-type]
            continue
        if field.name not in docs:
            raise MissingDescription(
                f"hydra.sweeper.{prefix}{field.name} has no description: write a docstring "
                f"under the field in {inspect.getsourcefile(cls)}"
            )
        found.append((prefix + field.name, default_of(field), docs[field.name]))
    return found


def settings_table() -> str:
    """The Markdown table of every ``hydra.sweeper.*`` setting."""
    from ivory_hydra.sweeper.settings import SweeperSettings

    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for name, default, text in rows(SweeperSettings):
        lines.append(f"| `{name}` | `{default}` | {text} |")
    return "\n".join(lines)


# The stored format's names, from ivory_hydra/stores/format.py.

NAMES = re.compile(r"<!-- stored names: (?P<cls>\w+) -->")
VERSION = "<!-- stored format version -->"
CONSTANT = re.compile(r'^\s+(?P<const>[A-Z_]+) = "(?P<value>[^"]*)"(\s*#\s*(?P<note>.*))?$')
SECTION = re.compile(r"^\s+# (?P<section>.+)$")


def constants(cls: type) -> list[tuple[str, str, str]]:
    """``(value, section, note)`` of each string constant of a class of names.

    ``section`` is the comment line above a group of names, ``note`` the comment
    after one.
    """
    found = []
    section = ""
    for line in inspect.getsource(cls).splitlines():
        if heading := SECTION.match(line):
            section = heading["section"]
        elif constant := CONSTANT.match(line):
            found.append((constant["value"], section, constant["note"] or ""))
    return found


def docstring_tables(doc: str) -> dict[str, str]:
    """The rows of the reST tables of a docstring: the first column's name, the second."""
    meanings: dict[str, str] = {}
    last = None
    for line in doc.splitlines():
        if line.startswith("``"):
            name, _, meaning = line[2:].partition("``")
            last = name
            meanings[name] = meaning.strip()
        elif last and line.startswith(" ") and line.strip():
            meanings[last] += " " + line.strip()
        else:
            last = None
    return {name: markdown_of(text) for name, text in meanings.items()}


def markdown_of(rest: str) -> str:
    """Inline reST as Markdown: ``code`` and :role:`name` become `code` and `name`."""
    rest = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", rest)
    return re.sub(r"``([^`]+)``", r"`\1`", rest)


def names_table(name: str) -> str:
    """One class of stored names in Markdown: a table for attributes, a list otherwise."""
    from ivory_hydra.stores import format as stored

    cls = getattr(stored, name)
    found = constants(cls)
    if name not in ("StudyAttr", "TrialAttr"):
        heading = (cls.__doc__ or name).strip().splitlines()[0].rstrip(".")
        groups: dict[str, list[str]] = {}
        for value, section, note in found:
            if value == cls.__dict__.get("PREFIX"):
                continue  # a prefix, not a name
            shown = f"`{value}*`" if value.endswith(".") else f"`{value}`"
            groups.setdefault(section or heading, []).append(f"{shown} ({note})" if note else shown)
        return "\n".join(
            f"- **{section}**: {', '.join(items)}" for section, items in groups.items()
        )
    meanings = docstring_tables(stored.__doc__ or "")
    rows = ["| name | meaning |", "|---|---|"]
    for value, _, _ in found:
        shown = f"{value}<r>" if value.endswith("/") else value
        if shown not in meanings:
            raise PluginError(f"{name} {value!r} is not described in format.py's docstring")
        rows.append(f"| `{shown}` | {meanings[shown]} |")
    return "\n".join(rows)


def put_stored_names(markdown: str) -> str:
    """Put the tables of stored names, and the format version, in place."""
    if VERSION in markdown:
        from ivory_hydra.stores.format import FORMAT_VERSION

        markdown = markdown.replace(VERSION, f"`{FORMAT_VERSION}`")
    return NAMES.sub(lambda m: names_table(m["cls"]), markdown)


# The architecture figure, from the import-linter contracts of pyproject.toml.

FIGURE = re.compile(r"<!-- layers figure: (?P<contract>.+?) -->")


def layers_of(contract_name: str) -> tuple[list[list[str]], str]:
    """The layers (top first, each a list of independent modules) and container of a contract."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    for contract in contracts:
        if contract["name"].startswith(contract_name):
            layers = [[m.strip() for m in re.split(r"[|:]", layer)] for layer in contract["layers"]]
            return layers, (contract.get("containers") or [""])[0]
    raise PluginError(f"no import-linter contract named {contract_name!r} in pyproject.toml")


def layers_figure(contract_name: str) -> str:
    """A mermaid figure of a layers contract: arrows point down only."""
    layers, container = layers_of(contract_name)
    lines = ["```mermaid", "flowchart TD"]
    for i, layer in enumerate(layers):
        nodes = [f'n{i}_{j}["{m.removeprefix("ivory_hydra.")}"]' for j, m in enumerate(layer)]
        if len(layer) == 1:
            lines.append(f"  {nodes[0]}")
        else:
            lines += [f'  subgraph L{i}[" "]', "    direction LR", *(f"    {n}" for n in nodes)]
            lines.append("  end")
    for i in range(len(layers) - 1):
        upper = f"n{i}_0" if len(layers[i]) == 1 else f"L{i}"
        lower = f"n{i + 1}_0" if len(layers[i + 1]) == 1 else f"L{i + 1}"
        lines.append(f"  {upper} --> {lower}")
    lines.append("```")
    if container:
        lines.insert(0, f"Inside `{container}`:\n")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Put the generated tables in place of their placeholders."""
    if PLACEHOLDER in markdown:
        markdown = markdown.replace(PLACEHOLDER, settings_table())
    markdown = FIGURE.sub(lambda m: layers_figure(m["contract"]), markdown)
    return put_stored_names(markdown)

"""Local SQLite files that several processes may create at the same moment.

A store is built in a private temporary file next to its final path and then
linked into place: ``os.link`` fails if the path exists, so exactly one build
wins, and no process ever opens a half-created store. A fresh store is a copy
of a pristine one, built once per version of its schema in the user's cache
folder: MLflow and Optuna build theirs by running their schema code, which
costs far more than a copy.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def create_once(path: Path, build: Callable[[Path], None]) -> bool:
    """Create ``path`` with ``build(tmp)`` unless it exists; True if this call made it.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.db"
    >>> create_once(target, lambda tmp: tmp.write_text("built"))
    True
    >>> create_once(target, lambda tmp: tmp.write_text("again"))
    False
    >>> target.read_text()
    'built'
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        tmp.unlink()  # build() creates it
        build(tmp)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        for leftover in (tmp, *tmp.parent.glob(f"{tmp.name}-*")):  # -wal, -shm, -journal
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def sqlite_file(url: str) -> Path | None:
    """The file of a local ``sqlite:///`` URL, else None.

    >>> sqlite_file("sqlite:////tmp/x/mlflow.db?timeout=5")
    PosixPath('/tmp/x/mlflow.db')
    >>> sqlite_file("sqlite://") is None, sqlite_file("postgresql://h/db") is None
    (True, True)
    """
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :].partition("?")[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def cache_folder() -> Path:
    """Where pristine stores are kept: ``$XDG_CACHE_HOME/ivory-hydra``, else
    ``~/.cache/ivory-hydra``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ivory-hydra"


def copy_of_pristine(
    path: Path,
    pristine: Path,
    build: Callable[[Path], None],
    adjust: Callable[[Path], None] | None = None,
) -> bool:
    """Create ``path`` as a copy of ``pristine`` (built with ``build`` on first need), then
    ``adjust``-ed before it appears; True if this call made it.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> built = []
    >>> build = lambda tmp: built.append(tmp.write_text("schema"))
    >>> copy_of_pristine(folder / "a.db", folder / "cache" / "p.db", build)
    True
    >>> copy_of_pristine(folder / "b.db", folder / "cache" / "p.db", build)
    True
    >>> len(built), (folder / "b.db").read_text()
    (1, 'schema')
    """

    def copy(tmp: Path) -> None:
        shutil.copyfile(pristine, tmp)
        if adjust is not None:
            adjust(tmp)

    create_once(pristine, build)
    return create_once(path, copy)

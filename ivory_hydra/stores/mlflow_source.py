"""MLflow's source tags: which script, which commit and which user made a run.

MLflow's own fluent API sets these on the runs it starts; the mirror creates
its runs with an explicit client, so it sets them itself (on every run it
creates). Nothing here imports :mod:`mlflow`.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from ivory_hydra.stores.format import Tag

__all__ = ["git_commit", "source_tags", "user_name"]


def git_commit(path: Path) -> str | None:
    """The commit checked out in the git work tree that holds ``path`` (None if none).

    Read from ``.git`` directly: no ``git`` process, no GitPython.
    """
    for folder in [path, *path.parents]:
        git = folder / ".git"
        if git.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = git.read_text().strip()
            git = (folder / text.removeprefix("gitdir:").strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref:"):
                return head or None
            ref = head.removeprefix("ref:").strip()
            common = git / "commondir"
            base = (git / common.read_text().strip()).resolve() if common.exists() else git
            for root in (git, base):
                if (root / ref).is_file():
                    return (root / ref).read_text().strip() or None
            for line in (base / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
        except OSError:
            return None
        return None
    return None


def source_tags(script: str | None) -> dict[str, str]:
    """MLflow's standard source tags for runs made by ``script`` (the app's file).

    >>> source_tags(None)["mlflow.source.type"]
    'LOCAL'
    """
    tags = {Tag.SOURCE_TYPE: "LOCAL", Tag.USER: user_name()}
    if script:
        path = Path(script).absolute()
        tags[Tag.SOURCE_NAME] = str(path)
        commit = git_commit(path.parent)
        if commit:
            tags[Tag.GIT_COMMIT] = commit
    return tags


def user_name() -> str:
    """The user MLflow records as a run's owner.

    >>> isinstance(user_name(), str)
    True
    """
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in containers without passwd entries
        return "unknown"

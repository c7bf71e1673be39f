"""Whether a store can be reached, found out before anything is written.

Each check returns None when the store can be used, or one line saying why
not; callers name the setting and hide the URL's password. A server gets
:data:`CONNECT_TIMEOUT` seconds and no retries, so that a wrong host fails in
seconds, not after minutes of a driver's retries.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Seconds a server gets to answer.
CONNECT_TIMEOUT = 5


def _first_line(error: BaseException) -> str:
    lines = str(getattr(error, "reason", error)).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def folder_problem(path: Path) -> str | None:
    """Why a local store file cannot be made at ``path`` (None if it can).

    >>> folder_problem(Path("/tmp/some/new/folder/optuna.db")) is None
    True
    >>> folder_problem(Path("/etc/hostname/x.db"))  # below a file
    'no writable folder for /etc/hostname/x.db'
    """
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is None or not folder.is_dir() or not os.access(folder, os.W_OK):
        return f"no writable folder for {path}"
    return None


def sqlite_problem(path: Path) -> str | None:
    """Why the existing file at ``path`` is not a usable SQLite database, in SQLite's words.

    Reads the file only (nothing is written, no journal is made).

    >>> import tempfile
    >>> text = Path(tempfile.mkdtemp()) / "optuna.db"
    >>> _ = text.write_text("not a database, but a long enough text file")
    >>> sqlite_problem(text) == f"file is not a database: {text}"
    True
    """
    import sqlite3

    if path.is_dir():
        return f"{path} is a folder, not an SQLite file"
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as error:
        return f"{path}: {_first_line(error)}"
    if header in (b"", b"SQLite format 3\x00"):
        return None  # an empty file is a new database to SQLite
    try:  # let SQLite say what is wrong, read-only
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
        try:
            connection.execute("PRAGMA schema_version").fetchall()
        finally:
            connection.close()
    except sqlite3.Error as error:
        return f"{str(error).strip()}: {path}"
    return f"not an SQLite database: {path}"


def database_problem(url: str) -> str | None:
    """Why the database server at ``url`` cannot be reached (None if it answers)."""
    try:
        import sqlalchemy

        args = (
            {"connect_timeout": CONNECT_TIMEOUT} if url.startswith(("postgresql", "mysql")) else {}
        )
        engine = sqlalchemy.create_engine(url, connect_args=args)
        try:
            with engine.connect():
                return None
        finally:
            engine.dispose()
    except Exception as error:  # noqa: BLE001 - drivers raise many kinds
        return _first_line(error)


def server_problem(url: str) -> str | None:
    """Why the HTTP server at ``url`` does not answer (None if it answers at all)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]  # reachability only: no credentials
    health = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path + "/health", "", ""))
    try:
        with urllib.request.urlopen(health, timeout=CONNECT_TIMEOUT):
            return None
    except urllib.error.HTTPError:
        return None  # it answered
    except Exception as error:  # noqa: BLE001 - URLError, timeouts, resets
        return _first_line(error)

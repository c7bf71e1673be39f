"""Hiding passwords in URLs, and in text that holds URLs (command lines, YAML)."""

from __future__ import annotations

import re


def redact_url(url: str) -> str:
    """Hide the password of a URL; leave everything else as it is.

    >>> redact_url("postgresql://user:secret@host:5432/db")
    'postgresql://user:***@host:5432/db'
    >>> redact_url("mysql+pymysql://u:p@ss@db.example/x?ssl=1")
    'mysql+pymysql://u:***@db.example/x?ssl=1'
    >>> redact_url("postgresql://u:a/b@host/db")
    'postgresql://u:***@host/db'
    >>> redact_url("redis://:pw@localhost:6379")
    'redis://:***@localhost:6379'
    >>> redact_url("postgresql://user@host/db")
    'postgresql://user@host/db'
    >>> redact_url("sqlite:////tmp/mlflow.db")
    'sqlite:////tmp/mlflow.db'
    >>> redact_url("not a url")
    'not a url'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*", scheme):
        return url
    # The user info ends at the last "@" before the query: this also hides
    # passwords holding an unescaped "@" or "/" (over-redacting is harmless).
    at = rest.rfind("@", 0, _first(rest, "?#"))
    if at < 0:
        return url
    user, colon, _password = rest[:at].partition(":")
    if not colon or "/" in user:
        return url
    return f"{scheme}://{user}:***{rest[at:]}"


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")


def redact_text(text: str) -> str:
    """Hide the password of every URL inside ``text`` (a command line, a YAML file).

    >>> redact_text("train.py -m hydra.sweeper.storage=postgresql://u:pw@h/db lr=1")
    'train.py -m hydra.sweeper.storage=postgresql://u:***@h/db lr=1'
    >>> redact_text("- hydra.sweeper.storage='mysql://u:pw@h/db'")
    "- hydra.sweeper.storage='mysql://u:***@h/db'"
    """
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def _first(text: str, chars: str) -> int:
    """Index of the first of ``chars`` in ``text`` (len(text) if none)."""
    found = [i for i in (text.find(c) for c in chars) if i >= 0]
    return min(found) if found else len(text)

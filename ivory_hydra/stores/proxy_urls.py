"""gRPC storage proxy URLs, ``grpc://HOST:PORT`` (no gRPC import here)."""

from __future__ import annotations

from ivory_hydra.core.redact import redact_url

#: A storage URL that starts so is Optuna's gRPC storage proxy, ``grpc://HOST:PORT``.
GRPC_PREFIX = "grpc://"


def is_grpc(url: str) -> bool:
    """True when ``url`` names a gRPC storage proxy (``grpc://HOST:PORT``).

    >>> is_grpc("grpc://127.0.0.1:50051"), is_grpc("postgresql://h/db")
    (True, False)
    """
    return url.startswith(GRPC_PREFIX)


def grpc_address(url: str) -> tuple[str, int]:
    """The host and port of ``grpc://HOST:PORT``; ``ValueError`` saying what is missing.

    >>> grpc_address("grpc://127.0.0.1:50051")
    ('127.0.0.1', 50051)
    >>> grpc_address("grpc://proxy.internal")
    Traceback (most recent call last):
    ...
    ValueError: grpc://proxy.internal has no port: give grpc://HOST:PORT
    >>> grpc_address("grpc://u:pw@h:x")
    Traceback (most recent call last):
    ...
    ValueError: grpc://u:***@h:x is not HOST:PORT: give grpc://HOST:PORT
    """
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = -1
    if parts.hostname and port is None:
        raise ValueError(f"{redact_url(url)} has no port: give grpc://HOST:PORT")
    if not parts.hostname or not port or port < 0 or parts.path not in ("", "/"):
        raise ValueError(f"{redact_url(url)} is not HOST:PORT: give grpc://HOST:PORT")
    return parts.hostname, port

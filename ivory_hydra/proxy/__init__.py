"""The storage proxy for hundreds of workers: ``python -m ivory_hydra.proxy STORAGE_URL --port N``.

One gRPC server, on one port, in front of one database, serving:

* Optuna's storage service, exactly as ``optuna.storages.run_grpc_proxy_server``
  serves it (over ``optuna.storages.get_storage``, whose cache saves reading
  every trial again);
* ivory-hydra's records service (:mod:`ivory_hydra.stores.remote_records`):
  the ledger and beats board of the same database.

Workers then use ``hydra.sweeper.storage=grpc://HOST:N``: only the proxy
connects to the database, through one connection pool as large as its
thread pool, however many workers there are. In front of SQLite it serves one
call at a time (SQLite writes one at a time anyway, and a claim stays a true
compare-and-set).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: Threads (and so database connections at most) of a proxy in front of a server.
DEFAULT_THREADS = 16
#: Seconds that calls in flight get to finish when the proxy is stopped (workers
#: send the ones cut off again once a proxy answers, as after a lost connection).
STOP_GRACE = 10


def start_proxy(url: str, host: str, port: int, threads: int = DEFAULT_THREADS) -> tuple[Any, int]:
    """Start serving the storage at ``url`` on ``host:port`` (0: a free port).

    Returns the running ``grpc.Server`` and the port it listens on.
    """
    import grpc
    from optuna.storages import get_storage

    from ivory_hydra._compat import add_optuna_storage_service
    from ivory_hydra.stores.beats import beats_for
    from ivory_hydra.stores.ledger import ledger_for
    from ivory_hydra.stores.optuna_storage import open_storage, set_pool_size
    from ivory_hydra.stores.remote_records import call_counter, records_handler

    set_pool_size(threads)
    storage = open_storage(url)  # the ledger and the board share its connections
    counter, counting = call_counter()
    server = grpc.server(
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ivory-proxy"),
        interceptors=[counting],
        options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
    )
    add_optuna_storage_service(get_storage(storage), server)
    server.add_generic_rpc_handlers(
        (records_handler(ledger_for(url), beats_for(url), storage, counter.snapshot),)
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} (in use?)")
    server.start()
    return server, bound


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ivory_hydra.proxy",
        description="Serve an Optuna storage and ivory-hydra's records to many workers, "
        "who use hydra.sweeper.storage=grpc://HOST:PORT.",
    )
    parser.add_argument("storage", help="the database: a PostgreSQL, MySQL or SQLite URL")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any)")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"calls served at once, and database connections at most (default "
        f"{DEFAULT_THREADS}; 1 in front of SQLite)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT or SIGTERM; a storage that cannot be served fails in one line."""
    from ivory_hydra.core.redact import redact_url
    from ivory_hydra.errors import IvoryError
    from ivory_hydra.stores.optuna_storage import check_storage, is_grpc, is_journal, storage_url
    from ivory_hydra.stores.sqlite_files import sqlite_file

    args = _arguments(argv)
    url = storage_url(args.storage)
    shown = redact_url(url)
    problem = None
    if is_journal(url) or is_grpc(url):
        problem = "the proxy serves a database (workers share a journal file directly)"
    elif args.threads < 1:
        problem = f"--threads must be at least 1, not {args.threads}"
    threads = 1 if sqlite_file(url) is not None else args.threads
    try:
        if problem is None:
            check_storage(url)
            server, port = start_proxy(url, args.host, args.port, threads)
    except (IvoryError, OSError, ValueError) as error:
        problem = str(error)
    if problem is not None:
        print(f"ivory_hydra.proxy: {shown}: {problem}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"ivory_hydra.proxy: serving {shown} at grpc://{args.host}:{port} "
        f"({threads} thread{'s' if threads > 1 else ''})",
        flush=True,
    )
    while not stop.wait(1.0):
        pass
    server.stop(grace=STOP_GRACE).wait()
    return 0

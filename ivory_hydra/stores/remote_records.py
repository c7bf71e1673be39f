"""The records service: the ledger and the beats board carried over gRPC.

Optuna's gRPC storage proxy serves ``BaseStorage`` calls only. Our
coordination records (run and task numbers, slot ownership, leases, beats)
live in ivory-hydra's own tables beside Optuna's, so the proxy that
``python -m ivory_hydra.proxy`` starts serves a second service on the same
port, ``ivory_hydra.Records``: each call is one operation of a
:class:`~ivory_hydra.stores.ledger.Ledger` or :class:`~ivory_hydra.stores.beats.Beats`,
JSON bytes in and out (a generic handler: nothing to compile). Workers then
talk to the proxy only, and only the proxy talks to the database.

This module is the wire: the method names, :class:`RecordsLink` (a worker's
calls) and :func:`records_handler` (the proxy's side). ``grpc`` is imported
only when a ``grpc://`` storage is used.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ivory_hydra.core.redact import redact_url
from ivory_hydra.errors import StorageUnavailableError, StoreError
from ivory_hydra.stores.proxy_urls import grpc_address

if TYPE_CHECKING:
    import grpc

log = logging.getLogger(__name__)

SERVICE = "ivory_hydra.Records"
#: Bumped when a method changes meaning; a worker refuses a proxy of another version.
#: 2: the ledger's writes carry the worker's token for them.
#: 3: BeatsReadMany, and TrialNumber (Optuna's proxy reads a whole trial for it).
PROTOCOL = 3
#: The RPCs of the records service (each takes and returns a JSON object) that may
#: be sent again when their answer was lost: they change nothing, or set what they
#: set again. The others (LedgerAdd, LedgerCompareAndSet) carry a token, which the
#: proxy's ledger records with the write: sent again, a write that landed is not
#: applied twice.
IDEMPOTENT = frozenset(
    {
        "Ping",
        "Calls",
        "LedgerGet",
        "LedgerItems",
        "BeatsWrite",
        "BeatsRead",
        "BeatsReadMany",
        "BeatsItems",
        "BeatsDelete",
        "TrialNumber",
    }
)


def proxy_command(port: int | str = "N") -> str:
    """How to start the proxy that serves both services.

    >>> proxy_command(50051)
    'python -m ivory_hydra.proxy STORAGE_URL --port 50051'
    """
    return f"python -m ivory_hydra.proxy STORAGE_URL --port {port}"


# ---------------------------------------------------------------- a worker's side


class BareProxyError(StoreError):
    """The proxy is Optuna's own: it does not serve the records service."""


class RecordsLink:
    """One channel to a proxy's records service (one per process and proxy).

    A call waits, unsent, while the proxy is down, for the process's
    ``storage_retry`` bound (as for a lost database connection); one whose
    answer was lost (the proxy restarted) is sent again under
    :mod:`ivory_hydra.stores.retry`: it is idempotent, or a ledger write with
    its token.
    """

    def __init__(self, url: str) -> None:
        import grpc

        self.url = url
        host, port = grpc_address(url)
        self.channel = grpc.insecure_channel(f"{host}:{port}")
        self._calls: dict[str, Any] = {}

    def call(self, method: str, **args: Any) -> Any:
        """Call ``method`` with ``args``; return its ``result``."""
        import grpc

        from ivory_hydra.stores import retry

        stub = self._calls.get(method)
        if stub is None:
            stub = self._calls[method] = self.channel.unary_unary(f"/{SERVICE}/{method}")
        request = json.dumps(args).encode()

        def send() -> Any:  # waits, unsent, while the proxy is down
            answer = stub(request, timeout=max(retry.storage_retry(), 1.0), wait_for_ready=True)
            return json.loads(answer)["result"]

        start = time.monotonic()
        try:
            if method not in IDEMPOTENT and not args.get("token"):
                return send()
            return retry.call(
                send, what=redact_url(self.url), unavailable=retry.storage_unavailable(self.url)
            )
        except grpc.RpcError as error:
            raise _error_of(self.url, method, error, time.monotonic() - start) from None


def _error_of(url: str, method: str, error: Any, seconds: float) -> Exception:
    """An RPC's failure as ivory-hydra's errors (a proxy that stays away, or the database)."""
    import grpc

    code, details = error.code(), (error.details() or "").strip()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return BareProxyError(f"{redact_url(url)}: {bare_proxy_problem(grpc_address(url)[1])}")
    if details.startswith(StorageUnavailableError.__name__ + ": "):  # the proxy's database
        return StorageUnavailableError(details.partition(": ")[2])
    codes = grpc.StatusCode
    if code in (codes.UNAVAILABLE, codes.CANCELLED, codes.DEADLINE_EXCEEDED):
        return StorageUnavailableError(
            f"the Optuna storage {redact_url(url)} could not be reached for {seconds:.0f} s "
            f"({code.name}: {details.splitlines()[0] if details else ''}); what was recorded "
            "is kept: run the same command again to resume once the proxy is back"
        )
    return StoreError(f"{SERVICE}/{method} at {redact_url(url)} failed: {code.name}: {details}")


def bare_proxy_problem(port: int) -> str:
    """What is wrong with Optuna's own proxy (no records service) on ``port``.

    >>> bare_proxy_problem(50051)  # doctest: +ELLIPSIS
    "it serves Optuna's storage but not ivory-hydra's records: start the proxy with `python -m ..."
    """
    return (
        "it serves Optuna's storage but not ivory-hydra's records: "
        f"start the proxy with `{proxy_command(port)}`"
    )


@functools.lru_cache(maxsize=8)
def link_for(url: str) -> RecordsLink:
    """The records link of the proxy at ``url`` (one per process)."""
    return RecordsLink(url)


@functools.lru_cache(maxsize=8)
def serves_records(url: str) -> bool:
    """Whether the proxy at ``url`` serves the records service (False: Optuna's bare
    proxy, whose records then go to a bookkeeping study; said once per process)."""
    from ivory_hydra.stores.study_records import RECORDS_STUDY

    try:
        link_for(url).call("Ping")
        return True
    except BareProxyError:
        log.warning(
            "%s is Optuna's own proxy: ivory-hydra keeps its records in the study %r, which "
            "optuna-dashboard lists (`%s` keeps them out of it)",
            redact_url(url),
            RECORDS_STUDY,
            proxy_command(grpc_address(url)[1]),
        )
        return False


def proxy_problem(url: str, timeout: float) -> str | None:
    """Why the proxy at ``url`` cannot serve a sweep (None if it can); writes nothing.

    Waits at most ``timeout`` seconds for it to answer, then asks the records
    service for its protocol. Optuna's bare proxy answers ``UNIMPLEMENTED``: it
    serves too, the records going to a bookkeeping study (:func:`serves_records`).
    """
    import grpc

    try:
        host, port = grpc_address(url)
    except ValueError as error:
        return str(error)
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return f"no gRPC server answers at {host}:{port} within {timeout:g} s"
        ping = channel.unary_unary(f"/{SERVICE}/Ping")
        try:
            answer = json.loads(ping(b"{}", timeout=timeout))["result"]
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None  # Optuna's own proxy
            return f"{host}:{port} answers, but not as a storage proxy ({error.code().name})"
    if answer.get("protocol") != PROTOCOL:
        return (
            f"the proxy at {host}:{port} speaks records protocol {answer.get('protocol')}, "
            f"this ivory-hydra {PROTOCOL}: run the same version on both sides"
        )
    return None


# ---------------------------------------------------------------- the proxy's side


class CallCounter:
    """How many RPCs of each method a server answered (a ``grpc.ServerInterceptor``).

    Built by :func:`call_counter` so that ``grpc`` is imported only here.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def count(self, method: str) -> None:
        with self.lock:
            self.counts[method.rpartition("/")[2]] += 1

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.counts)


def call_counter() -> tuple[CallCounter, Any]:
    """A call counter and the server interceptor that feeds it."""
    import grpc

    counter = CallCounter()

    class Counting(grpc.ServerInterceptor):
        def intercept_service(self, continuation: Callable[..., Any], details: Any) -> Any:
            counter.count(details.method)
            return continuation(details)

    return counter, Counting()


def records_handler(
    ledger: Any,
    beats: Any,
    storage: Any,
    calls: Callable[[], Mapping[str, int]] | None = None,
) -> grpc.GenericRpcHandler:
    """The records service over ``ledger`` and ``beats`` (the database's own).

    ``storage`` (what ``open_storage`` opened for the database) answers
    ``TrialNumber``, which Optuna's storage service lacks: its client reads a
    whole trial for a number. ``calls`` gives the counts of RPCs served (the
    ``Calls`` method: the scale benchmark reads storage calls per job from it).
    """
    import grpc

    operations: dict[str, Callable[..., Any]] = {
        "Ping": lambda: {"protocol": PROTOCOL},
        "Calls": lambda: dict(calls()) if calls is not None else {},
        "LedgerAdd": ledger.add,
        "LedgerGet": ledger.get,
        "LedgerCompareAndSet": ledger.compare_and_set,
        "LedgerItems": lambda prefix: [list(item) for item in ledger.items(prefix)],
        "BeatsWrite": beats.write,
        "BeatsRead": beats.read,
        "BeatsReadMany": beats.read_many,
        "BeatsItems": lambda prefix: [list(item) for item in beats.items(prefix)],
        "BeatsDelete": beats.delete,
        "TrialNumber": storage.get_trial_number_from_id,
    }

    def serve(operation: Callable[..., Any]) -> Callable[[bytes, Any], bytes]:
        def handle(request: bytes, context: Any) -> bytes:
            try:
                result = operation(**json.loads(request))
            except StorageUnavailableError as error:  # waited out already, by the proxy
                context.abort(grpc.StatusCode.ABORTED, f"{type(error).__name__}: {error}")
            except Exception as error:  # noqa: BLE001 - the worker gets it, named
                context.abort(grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}")
            return json.dumps({"result": result}).encode()

        return handle

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(serve(operation))
            for name, operation in operations.items()
        },
    )

"""An Optuna ``RDBStorage`` that waits out a lost database connection.

:class:`ResilientRDBStorage` is an ``RDBStorage`` (so ``optuna.load_study``
still wraps it in Optuna's ``_CachedStorage``) whose every public method, and
every private one that ``_CachedStorage`` calls, runs under the stores' retry
policy (:mod:`ivory_hydra.stores.retry`): SQLite's locks are retried briefly,
a lost connection for the process's ``storage_retry`` seconds, after which
:class:`~ivory_hydra.errors.StorageUnavailableError` says that rerunning the
same command resumes.

A retried write may have landed before the connection dropped (the commit
went through, its answer was lost). What a second attempt then does:

* ``create_new_trial``: a second trial is made. The engine hands out the id it
  got; the other one stays WAITING, without a live owner, and the next opener
  of the sweep fails it (one extra FAIL trial, nothing runs twice).
* ``set_trial_state_values(RUNNING)`` (a job's claim): the trial is RUNNING
  already, so the second attempt answers False and the job takes its claim for
  lost and does not run. The trial has no beat: it is stale at once, failed by
  whoever reads it next, and its job runs again.
* finishing a trial: the second attempt raises ``UpdateFinishedTrialError``,
  which callers read as "finished already" (it was, by us).
* ``create_new_study``: ``DuplicatedStudyError``, which ``Study.open`` reads as
  "load it".
* attributes, intermediate values, params (duplicates are ignored) and
  heartbeats: overwritten with the same value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container
from typing import TYPE_CHECKING, Any

from optuna.storages import GrpcStorageProxy, RDBStorage

from ivory_hydra._compat import CACHED_STORAGE_PRIVATE_CALLS, rdb_trial_number
from ivory_hydra.core.redact import redact_url
from ivory_hydra.stores import retry

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, TrialState

#: Methods that never touch the database (nothing to retry).
_LOCAL = frozenset(
    {
        "check_trial_is_updatable",
        "get_heartbeat_interval",
        "get_heartbeat_stale_trial_callback",
        "get_failed_trial_callback",
        "remove_session",
    }
)


def retried_methods() -> list[str]:
    """The names of the methods that :class:`ResilientRDBStorage` runs under the policy."""
    names = {
        name
        for cls in RDBStorage.__mro__[:-1]  # RDBStorage, BaseStorage, ABC, BaseHeartbeat
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_") and name not in _LOCAL
    }
    return sorted(names | set(CACHED_STORAGE_PRIVATE_CALLS))


class ResilientRDBStorage(RDBStorage):
    """``RDBStorage`` whose calls wait out a lost connection (see the module's doc)."""

    def _retried(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        url = self.url
        return retry.call(
            method,
            self,
            *args,
            what=redact_url(url),
            unavailable=retry.storage_unavailable(url),
            **kwargs,
        )

    def get_trial_number_from_id(self, trial_id: int) -> int:
        """One column of one row (``RDBStorage`` reads the whole trial for it)."""
        return self._retried(rdb_trial_number, trial_id)


class ResilientGrpcStorageProxy(GrpcStorageProxy):
    """Optuna's ``GrpcStorageProxy`` whose calls wait out a proxy that is gone for a
    moment (a restart), as a database storage waits out a lost connection: the
    same policy, the same bound, the same outcome of a write whose answer was lost."""

    def __init__(self, url: str) -> None:
        from ivory_hydra.stores.proxy_urls import grpc_address

        host, port = grpc_address(url)
        super().__init__(host=host, port=port)
        self.url = url

    _retried = ResilientRDBStorage._retried

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """The trial, its params in name order (see :func:`_in_name_order`)."""
        return _in_name_order(self._retried(GrpcStorageProxy.get_trial, trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """The trials, their params in name order (see :func:`_in_name_order`)."""
        found = self._retried(GrpcStorageProxy.get_all_trials, study_id, deepcopy, states)
        return [_in_name_order(trial) for trial in found]

    def get_trial_number_from_id(self, trial_id: int) -> int:
        """Asked of our proxy's records service (Optuna's client reads the whole trial)."""
        from ivory_hydra.stores.remote_records import link_for, serves_records

        if serves_records(self.url):
            return int(link_for(self.url).call("TrialNumber", trial_id=trial_id))
        return self.get_trial(trial_id).number


def _in_name_order(trial: FrozenTrial) -> FrozenTrial:
    """``trial`` with its params (and their distributions) in name order.

    Through the proxy a trial's params come out of a protobuf map, in an order
    that changes from one process to the next; a database or a journal keeps
    them in the order they were set. Name order makes what a sweep shows and
    writes through the proxy the same from one run to the next.
    """
    trial.params = dict(sorted(trial.params.items()))
    trial.distributions = dict(sorted(trial.distributions.items()))
    return trial


def _wrap(base: type, name: str) -> Callable[..., Any]:
    method = getattr(base, name)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._retried(method, *args, **kwargs)

    wrapper.ivory_retried = True  # type: ignore[attr-defined]
    return wrapper


for _name in retried_methods():
    if _name not in vars(ResilientRDBStorage):  # its own methods retry themselves
        setattr(ResilientRDBStorage, _name, _wrap(RDBStorage, _name))
#: The calls of Optuna's gRPC client that go to the proxy.
PROXY_CALLS = sorted(
    name
    for name, value in vars(GrpcStorageProxy).items()
    if callable(value) and not name.startswith("_") and name not in ("close", "wait_server_ready")
)
for _name in PROXY_CALLS:
    if _name not in vars(ResilientGrpcStorageProxy):
        setattr(ResilientGrpcStorageProxy, _name, _wrap(GrpcStorageProxy, _name))

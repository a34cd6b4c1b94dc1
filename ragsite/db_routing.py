"""Read replicas: which database a query goes to, read-your-writes pins and replica health.

Settings (see ragsite/settings.py): ``DATABASE_REPLICA_URLS`` adds the aliases
``replica_0``, ``replica_1``, ... (``DATABASE_REPLICA_ALIASES``). With none, everything
here answers "default" and costs nothing.

Who reads from a replica: only requests to the read-only views named in
``REPLICA_READ_VIEWS`` (search, /context/, /ask/'s retrieval, the search page, the document
page, chunk pages), and only their queries on the ``documents`` and ``search`` apps. Sessions,
users, tokens, the cache table (which holds the pins) and the task queue always stay on the
primary: a just-written session or token must never be looked up where it may not have
arrived yet. Every write goes to the primary, whatever the request.

Read-your-writes: a signed-in user whose request wrote (an unsafe method answered below 400
by a view not in the read list: upload, PATCH, grants...) is pinned to the primary for
``DATABASE_REPLICA_PIN_SECONDS``. The pin lives in the database cache on the primary, keyed
by user id, so every web process sees it and API clients that ignore cookies (tokens) are
covered too; a signed cookie would only have covered browsers.

Health: each process checks a replica at most every ``DATABASE_REPLICA_CHECK_SECONDS``
(with the alias's short ``connect_timeout``); one that is down, not in recovery, or behind
by more than ``DATABASE_REPLICA_MAX_LAG_SECONDS`` is skipped until the next check.
:func:`on_read_database` re-runs a read on the primary when its replica fails mid-request.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

logger = logging.getLogger(__name__)

T = TypeVar("T")

# URL names of views that only read (a POST to search or /ask/ writes nothing but counters).
REPLICA_READ_VIEWS = frozenset(
    {
        "search",
        "context",
        "ask",
        "chunk-detail",
        "chunk-similar",
        "search-page",
        "document-detail",
    }
)
# Apps whose rows a read view may take from a replica; every other app stays on the primary.
REPLICA_APPS = frozenset({"documents", "search"})
PIN_KEY = "db-replica-pin:{user_id}"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Replication lag in seconds: 0 when everything received has been replayed (an idle primary
# sends nothing, so the last replay time alone would look like growing lag).
LAG_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_receive_lsn() IS NULL
                 OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END
"""


def replica_aliases() -> list[str]:
    return list(getattr(settings, "DATABASE_REPLICA_ALIASES", []))


# --- Per-request state ----------------------------------------------------------------


@dataclass
class _ReadState:
    request: HttpRequest
    alias: str | None = None  # chosen once per request, so one request sees one database


_state: contextvars.ContextVar[_ReadState | None] = contextvars.ContextVar(
    "db_replica_read_state", default=None
)


@contextmanager
def replica_reads(request: HttpRequest) -> Iterator[None]:
    """Let this request's reads go to a replica (the middleware uses it for read views)."""
    token = _state.set(_ReadState(request=request))
    try:
        yield
    finally:
        _state.reset(token)


def read_alias() -> str:
    """The database this request's reads go to now: a healthy replica or the primary."""
    state = _state.get()
    if state is None or not replica_aliases():
        return DEFAULT_DB_ALIAS
    # Inside a transaction on the primary, reads must see that transaction's own writes.
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    if state.alias is None:
        state.alias = _choose(state.request)
    return state.alias


def _choose(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and is_pinned(user_id=user.pk):
        return DEFAULT_DB_ALIAS
    healthy = [alias for alias in replica_aliases() if replica_is_healthy(alias)]
    return random.choice(healthy) if healthy else DEFAULT_DB_ALIAS


# --- Read-your-writes pin -------------------------------------------------------------


def pin_to_primary(*, user_id: int) -> None:
    cache.set(PIN_KEY.format(user_id=user_id), 1, timeout=settings.DATABASE_REPLICA_PIN_SECONDS)


def is_pinned(*, user_id: int) -> bool:
    return cache.get(PIN_KEY.format(user_id=user_id)) is not None


# --- Replica health -------------------------------------------------------------------

_health_lock = threading.Lock()
_health: dict[str, tuple[float, bool]] = {}  # alias -> (checked at, monotonic; usable)


def replica_is_healthy(alias: str) -> bool:
    """Whether `alias` may serve reads, from a check at most CHECK_SECONDS old."""
    now = time.monotonic()
    with _health_lock:
        checked = _health.get(alias)
        if checked is not None and now - checked[0] < settings.DATABASE_REPLICA_CHECK_SECONDS:
            return checked[1]
    usable = _check(alias)
    with _health_lock:
        _health[alias] = (time.monotonic(), usable)
    return usable


def mark_replica_down(alias: str) -> None:
    with _health_lock:
        _health[alias] = (time.monotonic(), False)


def forget_replica_health() -> None:
    """Check every replica afresh on next use (tests, and after a failover)."""
    with _health_lock:
        _health.clear()


def _check(alias: str) -> bool:
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute(LAG_SQL)
            in_recovery, lag = cursor.fetchone()
    except DatabaseError as exc:
        logger.warning("replica %s skipped: %s", alias, str(exc).strip().splitlines()[0:1])
        connection.close()
        return False
    if not in_recovery:
        # A promoted replica is a primary now: writes there would never reach "default".
        logger.warning("replica %s skipped: it is not in recovery", alias)
        return False
    if float(lag) > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
        logger.warning("replica %s skipped: %.1f s behind", alias, float(lag))
        return False
    return True


def on_read_database(work: Callable[[str], T]) -> T:
    """Run `work(alias)` on this request's read database; if a replica fails under it
    (stopped since its last check), mark it down and run `work` again on the primary.
    `work` must only read: it may run twice."""
    alias = read_alias()
    if alias == DEFAULT_DB_ALIAS:
        return work(alias)
    try:
        return work(alias)
    except DatabaseError:
        if _check(alias):
            raise  # the replica is fine: the error is the query's own (a timeout, say)
        mark_replica_down(alias)
        state = _state.get()
        if state is not None:
            state.alias = DEFAULT_DB_ALIAS
        logger.warning("replica %s failed mid-request; read again on the primary", alias)
        return work(DEFAULT_DB_ALIAS)


# --- Router and middleware ------------------------------------------------------------


class ReplicaRouter:
    """DATABASE_ROUTERS entry: replicas for the read views' reads, the primary otherwise."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        if model._meta.app_label not in REPLICA_APPS:
            return DEFAULT_DB_ALIAS
        return read_alias()

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replicas hold the primary's rows: relations span them

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS  # replicas follow the primary's schema by replication


class ReplicaMiddleware:
    """Marks read views' requests for replica reads; pins writers to the primary."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_aliases():
            return self.get_response(request)
        if _is_read_view(request):
            with replica_reads(request):
                return self.get_response(request)
        response = self.get_response(request)
        if request.method not in SAFE_METHODS and response.status_code < 400:
            # request.user is the API's token user too: DRF sets it on the Django request.
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                pin_to_primary(user_id=user.pk)
        return response


def _is_read_view(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return match.url_name in REPLICA_READ_VIEWS


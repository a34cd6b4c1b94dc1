"""Query log rows written off the request path.

A request reserves its row's id (from a block of the table's sequence this process
holds, so usually without a database round trip) and puts the unsaved row on an
in-process queue; a daemon thread writes the queue with one bulk INSERT every
QUERY_LOG_FLUSH_SECONDS (0.5 s) and at exit. Durability: a crash (SIGKILL, OOM) loses
the rows of at most the last flush interval; a graceful stop (gunicorn's SIGTERM, the
end of a command) writes them. A vote names the reserved id, so a process flushes its
own queue before it looks a row up (insights/services.py); a vote served by another
process may have to wait for that interval.

A request that runs inside a transaction (ATOMIC_REQUESTS, tests) writes at once, in
it: another connection could not see the rows it references before it commits.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.db import connections

from insights.models import QueryLog

logger = logging.getLogger(__name__)

ID_BLOCK = 32  # ids reserved per sequence round trip

_lock = threading.Lock()  # the queue and the id block
# Held for a whole flush, so that a flush() returns only once every row queued before it
# is written, even those the thread had already taken (a vote looks its row up next).
_writing = threading.Lock()
_pending: list[tuple[QueryLog, Any, list[str] | None]] = []  # row, user, collection slugs
_ids: list[int] = []
_state: dict[str, Any] = {"pid": None, "wake": None}


def inline() -> bool:
    """Write in the request: logging set so, or a transaction the row must be part of."""
    return settings.QUERY_LOG_FLUSH_SECONDS <= 0 or connections["default"].in_atomic_block


def reserve_id() -> int:
    """The next id of the query log's sequence, from a block this process holds."""
    with _lock:
        if _state["pid"] != os.getpid():  # a forked child must not reuse its parent's ids
            _ids.clear()
        if not _ids:
            with connections["default"].cursor() as cursor:
                cursor.execute(
                    "SELECT nextval(pg_get_serial_sequence('insights_querylog', 'id')) "
                    "FROM generate_series(1, %s)",
                    [ID_BLOCK],
                )
                _ids.extend(sorted((int(r[0]) for r in cursor.fetchall()), reverse=True))
        _ensure_thread()
        return _ids.pop()


def enqueue(row: QueryLog, *, user: Any, collection_slugs: list[str] | None) -> None:
    with _lock:
        _ensure_thread()
        _pending.append((row, user, collection_slugs))


def _ensure_thread() -> None:
    """One flusher per process, started on first use (after a fork: anew). Lock held."""
    if _state["pid"] == os.getpid():
        return
    _pending.clear()  # a parent's queue is the parent's to write
    _state["pid"] = os.getpid()
    wake = threading.Event()
    _state["wake"] = wake
    threading.Thread(target=_run, args=(wake,), name="query-log-writer", daemon=True).start()


def _run(wake: threading.Event) -> None:
    while True:
        wake.wait(timeout=max(0.05, float(settings.QUERY_LOG_FLUSH_SECONDS)))
        wake.clear()
        if flush():
            # This thread's own connection: not held open between flushes (a test
            # database, or a pool, would see an idle client for the process's life).
            connections.close_all()


def flush() -> int:
    """Write this process's queued rows now (one bulk INSERT); the number written."""
    with _writing:
        with _lock:
            batch = list(_pending)
            _pending.clear()
        return _write(batch) if batch else 0


def _write(batch: list[tuple[QueryLog, Any, list[str] | None]]) -> int:
    from documents.selectors import collection_list_readable

    rows = []
    searched: dict[tuple[Any, ...], list[int]] = {}  # one query per caller and filter
    try:
        for row, user, slugs in batch:
            key = (row.user_id, tuple(slugs or ()))
            if key not in searched:
                readable = collection_list_readable(user=user)
                if slugs:
                    readable = readable.filter(slug__in=slugs)
                searched[key] = list(readable.order_by("pk").values_list("pk", flat=True))
            row.collection_ids = list(searched[key])
            rows.append(row)
        QueryLog.objects.using("default").bulk_create(rows)
    except Exception:  # a failed write loses these rows, never a request
        logger.exception("query log: %d rows could not be written", len(batch))
        return 0
    return len(rows)


atexit.register(flush)

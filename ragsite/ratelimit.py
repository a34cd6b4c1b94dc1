"""Fixed-window request counters that hold under concurrency.

Each (scope, client, window) is one row of `ratelimit_counter` (accounts.RateCounter),
bumped by a single ``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING``:
PostgreSQL serialises the increments of one row, so N parallel requests see N distinct
counts and exactly `limit` of them pass. (Django's cache API reads, adds and writes back
in separate statements, so parallel requests overwrote each other's counts.) Every web
process shares the table, so no cache server is needed.

Only `django.db.connection` is imported here, never a model: DRF imports the throttles
that use this module while `rest_framework.views` loads, possibly before apps are ready.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from dataclasses import dataclass

from django.db import connection

TABLE = "ratelimit_counter"  # accounts.models.RateCounter
# Expired windows are deleted by about one request in this many: cheap, and the table
# stays at roughly one row per active client and scope.
PURGE_ONE_IN = 200
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    limit: int
    seconds: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after: int  # seconds until the current window ends


def rate_parse(text: str | None) -> Rate | None:
    """``"120/minute"`` -> Rate(120, 60). Empty means "no limit" (None).

    The format is DRF's: N/second|minute|hour|day (only the first letter counts).
    """
    if not text:
        return None
    number, _, period = text.partition("/")
    try:
        return Rate(limit=int(number), seconds=_PERIODS[period.strip()[:1].lower()])
    except (ValueError, KeyError) as exc:
        raise ValueError(f"invalid rate {text!r}: use N/second, N/minute, N/hour or N/day") from exc


def _window(rate: Rate, now: float) -> tuple[int, int]:
    """The current window's number and the seconds left in it (at least 1)."""
    index = int(now // rate.seconds)
    return index, max(1, math.ceil((index + 1) * rate.seconds - now))


def _key(scope: str, ident: str, window: int) -> str:
    # Usernames and addresses are short; anything long (or odd) is hashed to fit the column.
    if len(ident) > 100 or not ident.isprintable():
        ident = "sha256:" + hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{scope}:{window}:{ident}"


def ratelimit_hit(*, scope: str, ident: str, rate: Rate) -> Verdict:
    """Count one request of `ident` in `scope` and say whether it is within `rate`."""
    now = time.time()
    window, retry_after = _window(rate, now)
    expires = (window + 1) * rate.seconds
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (key, count, expires) VALUES (%s, 1, to_timestamp(%s)) "
            f"ON CONFLICT (key) DO UPDATE SET count = {TABLE}.count + 1 RETURNING count",
            [_key(scope, ident, window), expires],
        )
        (count,) = cursor.fetchone()
        if random.randrange(PURGE_ONE_IN) == 0:  # noqa: S311 (not security-relevant)
            cursor.execute(f"DELETE FROM {TABLE} WHERE expires < now()")
    return Verdict(allowed=count <= rate.limit, count=count, retry_after=retry_after)


def ratelimit_peek(*, scope: str, ident: str, rate: Rate) -> Verdict:
    """Whether `ident` is still within `rate` in `scope`, without counting anything
    (a lockout check: only failures are counted, with ratelimit_hit)."""
    window, retry_after = _window(rate, time.time())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count FROM {TABLE} WHERE key = %s", [_key(scope, ident, window)])
        row = cursor.fetchone()
    count = row[0] if row else 0
    return Verdict(allowed=count < rate.limit, count=count, retry_after=retry_after)


def ratelimit_purge() -> int:
    """Delete the rows of windows that have ended; returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE expires < now()")
        return cursor.rowcount

"""API throttles (DEFAULT_THROTTLE_CLASSES) on the atomic counters of ragsite.ratelimit.

DRF's own throttles keep a list of timestamps in the cache and write it back after
reading it, so parallel requests overwrote each other's counts and far more than the
rate got through. These count with one atomic statement per request instead: fixed
windows, exactly `limit` requests per window, 429 + Retry-After (the seconds left in the
window) after that.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from ragsite.ratelimit import Verdict, rate_parse, ratelimit_hit


class CounterThrottle(BaseThrottle):
    """Subclass with a `scope`, a `setting` and `client()`; or subclass UserThrottle and
    set those two for another per-user budget (e.g. a costly endpoint's)."""

    scope = ""
    setting = ""  # the name of the setting that holds the rate ("" turns it off)

    def __init__(self) -> None:
        self.verdict: Verdict | None = None

    def client(self, request: Request) -> str | None:
        """Who is counted, or None for a request this throttle does not count."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        rate = rate_parse(getattr(settings, self.setting))
        ident = self.client(request)
        if rate is None or ident is None:
            return True
        self.verdict = ratelimit_hit(scope=self.scope, ident=ident, rate=rate)
        return self.verdict.allowed

    def wait(self) -> float | None:
        return self.verdict.retry_after if self.verdict else None


class AnonThrottle(CounterThrottle):
    """Per client address, for callers without a session or token (behind proxies, the
    address the last of API_NUM_PROXIES put in X-Forwarded-For)."""

    scope = "anon"
    setting = "API_THROTTLE_ANON"

    def client(self, request: Request) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return str(self.get_ident(request))


class UserThrottle(CounterThrottle):
    """Per signed-in user: all of a user's tokens and sessions share one budget."""

    scope = "user"
    setting = "API_THROTTLE_USER"

    def client(self, request: Request) -> str | None:
        if request.user and request.user.is_authenticated:
            return str(request.user.pk)
        return None

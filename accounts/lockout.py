"""Counting failed sign-ins and bad credentials, and locking out after too many.

Failures are counted per client address and per username (signing in with a password:
the login page, the admin login, HTTP basic auth on the tokens endpoint) or per address
(bad bearer tokens), in fixed windows of ragsite.ratelimit. Only failures count; once a
client is over its budget even a correct password is refused until the window ends, so
guessing gains nothing by going fast. The per-username budget means someone who knows a
username can lock that account out of password sign-in for a window (tokens and open
sessions keep working); the per-address budget is the tighter of the two so a single
guesser is stopped first.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from ragsite.ratelimit import Verdict, rate_parse, ratelimit_hit, ratelimit_peek


def client_address(request: Any) -> str:
    """The caller's address as the API throttles see it (behind API_NUM_PROXIES proxies,
    from X-Forwarded-For). Works on Django and DRF requests alike."""
    return str(BaseThrottle().get_ident(request) or "unknown")


def _password_budgets(request: Any, username: str) -> list[tuple[str, str, str]]:
    budgets = [("login-address", client_address(request), settings.LOGIN_FAILURES_PER_ADDRESS)]
    if username:
        budgets.append(("login-user", username.casefold(), settings.LOGIN_FAILURES_PER_USER))
    return budgets


def _first_refusal(budgets: list[tuple[str, str, str]], *, count: bool) -> Verdict | None:
    refusal = None
    for scope, ident, text in budgets:
        rate = rate_parse(text)
        if rate is None:
            continue
        check = ratelimit_hit if count else ratelimit_peek
        verdict = check(scope=scope, ident=ident, rate=rate)
        if not verdict.allowed and (refusal is None or verdict.retry_after > refusal.retry_after):
            refusal = verdict
    return refusal


def password_locked(*, request: Any, username: str) -> Verdict | None:
    """A refusal if this address or username used up its failed sign-ins, else None."""
    return _first_refusal(_password_budgets(request, username), count=False)


def password_failed(*, request: Any, username: str) -> Verdict | None:
    """Count a failed sign-in; a refusal if that was one too many, else None."""
    return _first_refusal(_password_budgets(request, username), count=True)


def _token_budget(request: Any) -> list[tuple[str, str, str]]:
    return [("bad-token", client_address(request), settings.API_AUTH_FAILURES_PER_ADDRESS)]


def token_locked(*, request: Any) -> Verdict | None:
    """A refusal if this address sent too many bad credentials, else None."""
    return _first_refusal(_token_budget(request), count=False)


def token_failed(*, request: Any) -> Verdict | None:
    """Count a bad credential; a refusal if that was one too many, else None."""
    return _first_refusal(_token_budget(request), count=True)


def lockout_message(verdict: Verdict) -> str:
    minutes = -(-verdict.retry_after // 60)
    wait = f"{verdict.retry_after} seconds" if verdict.retry_after < 120 else f"{minutes} minutes"
    return f"Too many failed attempts from here; try again in {wait}."

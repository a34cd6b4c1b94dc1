"""Throttle HTML pages (settings.THROTTLED_PAGES, by URL name) like the API: the search
page ran a search per request and answered any number of them.

The same rates as the API (API_THROTTLE_ANON per address, API_THROTTLE_USER per
signed-in user) in budgets of their own, on the atomic counters of ragsite.ratelimit;
over the rate, a 429 page with `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.lockout import client_address
from ragsite.ratelimit import rate_parse, ratelimit_hit


class PageThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or match.url_name not in settings.THROTTLED_PAGES:
            return None
        if request.user.is_authenticated:
            scope, ident, text = "page-user", str(request.user.pk), settings.API_THROTTLE_USER
        else:
            scope, ident, text = "page-anon", client_address(request), settings.API_THROTTLE_ANON
        rate = rate_parse(text)
        if rate is None:
            return None
        try:
            verdict = ratelimit_hit(scope=scope, ident=ident, rate=rate)
        except (OperationalError, InterfaceError):
            # Database down: let the view run into it, so DatabaseUnavailableMiddleware
            # answers its 503 (it does not see exceptions raised in process_view).
            return None
        if verdict.allowed:
            return None
        response = render(
            request,
            "accounts/throttled.html",
            {"retry_after": verdict.retry_after},
            status=429,
        )
        response["Retry-After"] = str(verdict.retry_after)
        return response

"""Content-Security-Policy for our HTML pages: scripts and styles only from our own
static files, so text that slipped through escaping could still run nothing.

The Django admin works under the strict policy (it has no inline scripts or styles).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
# DRF's browsable API puts a few style="" attributes in its templates: allow inline
# styles there, never inline scripts.
API_POLICY = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
# Swagger UI (/api/v1/docs/) loads its script from /static and from a URL of its own (the
# "split" view: no inline script), so the API policy holds there too. ReDoc is not served:
# it fetched web fonts and a logo from the internet.


def policy_for(path: str) -> str:
    return API_POLICY if path.startswith("/api/") else POLICY


class ContentSecurityPolicyMiddleware:
    """Sets the policy on HTML responses that do not set their own (downloads do)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = policy_for(request.path)
        if (
            policy
            and "Content-Security-Policy" not in response
            and response.get("Content-Type", "").startswith("text/html")
        ):
            response["Content-Security-Policy"] = policy
        return response

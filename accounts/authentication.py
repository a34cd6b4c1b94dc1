"""API authentication: bearer tokens everywhere, HTTP basic auth on the tokens endpoint
only (so a first token can be had without a browser).

An Authorization header is never ignored: one that is not a valid credential of a scheme
the endpoint accepts answers 401 with a message naming `Bearer <token>`, rather than
the request going on anonymously (a search then looked like "no results"). Bad
credentials are counted per address; past API_AUTH_FAILURES_PER_ADDRESS (or, for
passwords, the sign-in budgets of accounts.lockout) the answer is 429 until the window
ends, so guessing tokens or passwords at speed does not work.
"""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

EXPECTED = "send `Authorization: Bearer <token>`"


def _refuse(request: Request, message: str) -> exceptions.APIException:
    """The error for a bad credential: 401, or 429 once the address sent too many."""
    from accounts.lockout import lockout_message, token_failed

    verdict = token_failed(request=request)
    if verdict is not None:
        return exceptions.Throttled(verdict.retry_after, lockout_message(verdict))
    return exceptions.AuthenticationFailed(message)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <token>` with tokens from accounts.ApiToken."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        # Imported here: DRF imports this module while rest_framework.views loads,
        # possibly before the app registry is ready (see ragsite/api/__init__.py).
        from accounts.lockout import lockout_message, token_locked
        from accounts.services import token_authenticate

        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        scheme = header[0].lower()
        if scheme == b"basic" and any(
            isinstance(a, authentication.BasicAuthentication) for a in request.authenticators or ()
        ):
            return None  # the tokens endpoint's basic authentication handles it
        locked = token_locked(request=request)
        if locked is not None:
            raise exceptions.Throttled(locked.retry_after, lockout_message(locked))
        if scheme != self.keyword.lower().encode():
            name = header[0].decode("latin-1")[:20]
            raise _refuse(request, f"Unsupported authorization scheme {name!r}: {EXPECTED}.")
        if len(header) != 2:
            raise _refuse(request, f"Invalid Authorization header: {EXPECTED}.")
        try:
            secret = header[1].decode()
        except UnicodeDecodeError:
            raise _refuse(request, "Invalid token.") from None
        token = token_authenticate(secret=secret)
        if token is None:
            raise _refuse(request, "Invalid, revoked or expired token.")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class _PasswordRefused(exceptions.AuthenticationFailed):
    """A wrong username or password (already counted as a failed sign-in)."""


class TokenEndpointBasicAuthentication(authentication.BasicAuthentication):
    """Username and password, for /api/v1/tokens/ only: how a script gets its first
    token. Failures count towards the same sign-in lockout as the login page."""

    www_authenticate_realm = "ragsite tokens"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != b"basic":
            return None
        try:
            return super().authenticate(request)
        except _PasswordRefused:
            raise
        except exceptions.AuthenticationFailed as exc:
            # Malformed headers: a bad credential like any other.
            raise _refuse(request, str(exc.detail)) from None

    def authenticate_credentials(
        self, userid: str, password: str, request: Any = None
    ) -> tuple[Any, None]:
        from accounts.lockout import lockout_message, password_failed, password_locked

        locked = password_locked(request=request, username=userid)
        if locked is not None:
            raise exceptions.Throttled(locked.retry_after, lockout_message(locked))
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed as exc:
            refused = password_failed(request=request, username=userid)
            if refused is not None:
                raise exceptions.Throttled(refused.retry_after, lockout_message(refused)) from None
            raise _PasswordRefused(exc.detail) from None

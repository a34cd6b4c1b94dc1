"""API-wide conventions: the error shape (every error answers
`{"detail": ..., "errors": {...}?}`), the list page-size cap and the throttles."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        # A request body over DATA_UPLOAD_MAX_MEMORY_SIZE (a JSON `text` upload, say):
        # Django would answer a bare 400; it is a size problem, so say so.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"request body over {limit} bytes; send large documents as a file"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        errors = response.data
        response.data = {"detail": _first_message(errors), "errors": errors}
    return response


def _first_message(errors: Any, path: str = "") -> str:
    """A one-line message that names the field, e.g. "top_k: Ensure this value ..."."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = key if key != "non_field_errors" else ""
            return _first_message(value, f"{path}.{name}".strip(".") if name else path)
    if isinstance(errors, list) and errors:
        return _first_message(errors[0], path)
    return f"{path}: {errors}" if path else str(errors)


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` up to API_MAX_PAGE_SIZE; more is refused with a 400 rather than
    silently cut, so a client never mistakes a short page for the end of the list."""

    def get_limit(self, request: Request) -> int | None:
        self.max_limit = settings.API_MAX_PAGE_SIZE
        raw = request.query_params.get(self.limit_query_param)
        if raw is not None:
            try:
                value = int(raw)
            except ValueError:
                value = 0
            if not 1 <= value <= self.max_limit:
                raise ValidationError({"limit": f"must be between 1 and {self.max_limit}"})
        return super().get_limit(request)


def _rate(setting: str) -> str | None:
    return getattr(settings, setting) or None  # empty: that throttle is off


class AnonThrottle(AnonRateThrottle):
    """Per client address, for callers without a session or token. Counts live in the
    default cache (the database), so every web process shares them."""

    def get_rate(self) -> str | None:
        return _rate("API_THROTTLE_ANON")


class UserThrottle(UserRateThrottle):
    """Per signed-in user (all of a user's tokens share one budget)."""

    def get_rate(self) -> str | None:
        return _rate("API_THROTTLE_USER")

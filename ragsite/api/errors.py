"""The error shape: every error the API answers is ``{"detail": ..., "errors": {...}?}``
(EXCEPTION_HANDLER)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # Imported here, not with the module: see ragsite/api/__init__.py.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, RequestDataTooBig):
        # A request body over DATA_UPLOAD_MAX_MEMORY_SIZE (a JSON `text` upload, say):
        # Django would answer a bare 400; it is a size problem, so say so.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"request body over {limit} bytes; send large documents as a file"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, RecursionError):
        # A body nested deeper than Python's recursion limit, read by a view whose own
        # parser_classes bypass ragsite.api.parsers.JSONParser: not a server fault.
        return Response(
            {"detail": "request nested too deeply to process"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        # Django would answer its HTML 400 page; an API client expects the error shape.
        return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError):
        errors = response.data
        if not isinstance(errors, dict):  # ValidationError("...") outside a serializer
            errors = {"non_field_errors": errors}
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


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: under /api/, a URL that matches no route (an id that is not a number,
    a slug with characters slugs cannot hold) answers the API's JSON error like every
    other 404 of the API, not Django's HTML page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)

"""API-wide error shape: every error answers `{"detail": ..., "errors": {...}?}`."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
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

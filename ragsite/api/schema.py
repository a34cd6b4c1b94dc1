"""API-wide conventions: the error shape (every error answers
`{"detail": ..., "errors": {...}?}`), the list page-size cap, the throttles, and the
schema class that documents all of them on every operation."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import serializers, status
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

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": settings.API_MAX_PAGE_SIZE},
            self.offset_query_param: {"minimum": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters


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


# --- The schema ------------------------------------------------------------------------


class ApiErrorSerializer(serializers.Serializer):
    """The body of every error the API itself answers (see exception_handler)."""

    detail = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Every problem, per field (400 only).")


# Errors any operation can answer, whatever its own @extend_schema says: a caller cannot
# avoid them by sending valid input, so a client must be told to expect them.
_ALWAYS = {
    "401": "Invalid, revoked or expired credentials, or none where they are needed.",
    "403": "Not allowed (or a session request without its CSRF token).",
    "429": "Too many requests; retry after the seconds in `Retry-After`.",
}
_WITH_INPUT = {"400": "Invalid input; `detail` names the field, `errors` lists every problem."}
_WITH_BODY = {
    "413": "Request body over the size limit.",
    "415": "Unsupported Content-Type.",
}
# Without a body schema: an id that is not even a number never reaches the API, and
# Django's URL resolver answers that 404 itself.
_WITH_PATH = {"404": "Not found, or not readable by you."}


@functools.cache
def _auto_schema_class() -> type:
    # Imported on first use, not with this module: DRF imports this module for the
    # throttles while rest_framework.views is still loading, and drf-spectacular's
    # AutoSchema needs that module complete.
    from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
    from drf_spectacular.utils import OpenApiResponse
    from rest_framework import permissions

    from accounts.permissions import ReadAnyWriteAuthenticated

    class AutoSchema(SpectacularAutoSchema):
        """drf-spectacular's schema, plus the conventions every endpoint shares: the error
        codes above, documented with the error body, on each operation that can answer them.

        ``responses=`` that lists error codes only (such as a viewset-wide
        ``@extend_schema(responses=ERRORS)``) adds to the operation's success response
        instead of replacing it, so such a decorator cannot leave an operation without
        its 2xx.
        """

        def get_auth(self) -> list[dict[str, Any]]:
            auth = super().get_auth()
            # drf-spectacular marks auth optional ({}) only for DRF's own AllowAny and
            # IsAuthenticatedOrReadOnly; ours lets anyone read too.
            readable = any(
                isinstance(permission, ReadAnyWriteAuthenticated)
                for permission in self.view.get_permissions()
            )
            if readable and self.method in permissions.SAFE_METHODS and {} not in auth:
                auth.append({})
            return auth

        def _get_response_bodies(self, direction: Any = "response") -> Any:
            responses = super()._get_response_bodies(direction)
            if isinstance(responses, dict) and not any(c.startswith("2") for c in responses):
                responses = {**self._default_success(direction), **responses}
            return responses

        def _default_success(self, direction: Any) -> dict[str, Any]:
            """The success response drf-spectacular documents when nothing overrides it."""
            if self.method == "DELETE":
                return {"204": {"description": "No response body"}}
            serializer = self._get_serializer()
            code = "201" if self._is_create_operation() else "200"
            return {code: self._get_response_for_code(serializer, code, direction=direction)}

        def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
            operation = super().get_operation(*args, **kwargs)
            if operation is None:
                return None
            locations = {parameter["in"] for parameter in operation.get("parameters", [])}
            has_body = "requestBody" in operation
            errors = dict(_ALWAYS)
            if has_body or "query" in locations:
                errors.update(_WITH_INPUT)
            if has_body:
                errors.update(_WITH_BODY)
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                entry = responses.get(code)
                if entry is not None and "content" in entry:
                    continue  # documented with its body by the view itself
                if entry is not None:
                    description = entry["description"]
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(ApiErrorSerializer, description=description), code
                )
            if "path" in locations:
                for code, description in _WITH_PATH.items():
                    responses.setdefault(code, {"description": description})
            return operation

    return AutoSchema


def __getattr__(name: str) -> Any:
    """``ragsite.api.AutoSchema`` (DEFAULT_SCHEMA_CLASS), built on first use (PEP 562)."""
    if name == "AutoSchema":
        return _auto_schema_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def json_query_parameters(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Postprocessing hook: an object in the query string (the `filters` of GET /search/)
    is sent as one JSON-encoded parameter, as JSONFiltersField reads it, not exploded into
    one parameter per key as OpenAPI assumes by default: say so with `content`."""
    schemas = result.get("components", {}).get("schemas", {})

    def is_object(schema: dict[str, Any]) -> bool:
        if "$ref" in schema:
            return is_object(schemas.get(schema["$ref"].rsplit("/", 1)[-1], {}))
        return schema.get("type") == "object" or any(map(is_object, schema.get("allOf", [])))

    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and is_object(parameter.get("schema", {})):
                    parameter["content"] = {"application/json": {"schema": parameter.pop("schema")}}
    return result

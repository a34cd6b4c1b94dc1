"""The OpenAPI schema: the AutoSchema class (DEFAULT_SCHEMA_CLASS) that documents the
error codes every operation shares, and a postprocessing hook (SPECTACULAR_SETTINGS).

drf-spectacular imports rest_framework.views, so nothing DRF imports while that module
loads may live here (see ragsite/api/__init__.py); DRF reads DEFAULT_SCHEMA_CLASS only
when a schema is generated."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers

import accounts.schema  # noqa: F401 (registers the bearer token scheme)
from accounts.permissions import ReadAnyWriteAuthenticated


class ApiErrorSerializer(serializers.Serializer):
    """The body of every error the API itself answers (see exception_handler)."""

    detail = serializers.CharField()
    # Shadows Serializer.errors; harmless, this serializer only documents the shape.
    errors = serializers.DictField(  # type: ignore[assignment]
        required=False, help_text="Every problem, per field (400 only)."
    )


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

"""The list page-size cap (DEFAULT_PAGINATION_CLASS)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request


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

"""How the search APIs answer a search that cannot run: the request's fault is a 400
naming the field, a search stopped by its statement_timeout a 503 with Retry-After."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from ragsite.api.schema import ApiErrorSerializer
from search.retrieval import QueryError, SearchTimeout

RETRY_AFTER_SECONDS = 5

BAD_REQUEST = OpenApiResponse(
    ApiErrorSerializer, description="Invalid parameter; `detail` names the field."
)
TIMED_OUT = OpenApiResponse(
    ApiErrorSerializer,
    description="The search ran past SEARCH_STATEMENT_TIMEOUT_MS and was stopped; retry "
    "after `Retry-After` seconds, or narrow the query or its filters.",
)


class SearchTimedOut(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "search_timeout"
    # DRF's exception handler turns `wait` into the Retry-After header.
    wait = RETRY_AFTER_SECONDS


def search_api_error(exc: QueryError | SearchTimeout) -> APIException:
    if isinstance(exc, SearchTimeout):
        return SearchTimedOut(str(exc))
    return ValidationError({exc.field: [exc.message]})  # a list, as a serializer says it

"""How the search APIs answer a search that cannot run: the request's fault is a 400
naming the field, a search stopped by its statement_timeout a 503 with Retry-After, and a
semantic search whose embedding model cannot answer (its server is down) a 503 with why."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError

from ragsite.api.schema import ApiErrorSerializer
from search.retrieval import QueryError, SearchTimeout, SemanticUnavailable

RETRY_AFTER_SECONDS = 5

BAD_REQUEST = OpenApiResponse(
    ApiErrorSerializer, description="Invalid parameter; `detail` names the field."
)
TIMED_OUT = OpenApiResponse(
    ApiErrorSerializer,
    description="The search ran past SEARCH_STATEMENT_TIMEOUT_MS and was stopped; retry "
    "after `Retry-After` seconds, or narrow the query or its filters. Or a semantic search "
    "whose embedding model cannot embed the query (its server is down): `detail` says why; "
    "hybrid and keyword searches still answer.",
)
# Everything a search may raise that is an answer for the caller rather than a bug.
SEARCH_FAILURES = (QueryError, SearchTimeout, SemanticUnavailable)


class SearchTimedOut(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "search_timeout"
    # DRF's exception handler turns `wait` into the Retry-After header.
    wait = RETRY_AFTER_SECONDS


class SemanticSearchUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "semantic_unavailable"
    wait = RETRY_AFTER_SECONDS


def search_api_error(exc: QueryError | SearchTimeout | SemanticUnavailable) -> APIException:
    if isinstance(exc, SearchTimeout):
        return SearchTimedOut(str(exc))
    if isinstance(exc, SemanticUnavailable):
        return SemanticSearchUnavailable(str(exc))
    return ValidationError({exc.field: [exc.message]})  # a list, as a serializer says it

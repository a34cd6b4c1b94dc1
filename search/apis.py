from __future__ import annotations

import time
from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents.models import Chunk
from insights.recording import query_logged
from search.api_errors import BAD_REQUEST, SEARCH_FAILURES, TIMED_OUT, search_api_error
from search.retrieval import SearchParams, SearchResponse, SearchTimeout, search, search_similar
from search.selectors import anonymous_hint, chunk_detail
from search.serializers import (
    ChunkSerializer,
    SearchRequestSerializer,
    SearchResponseSerializer,
    SimilarRequestSerializer,
)

NOT_FOUND = OpenApiResponse(description="No such chunk, or not readable by you.")
SEARCH_ERRORS = {400: BAD_REQUEST, 503: TIMED_OUT}


def search_response_body(response: SearchResponse, *, user: Any, started: float) -> Any:
    """The response as SearchResponseSerializer shapes it, with the whole time taken and,
    for an anonymous caller when nothing is public, why nothing is found."""
    response.timing_ms["total_ms"] = (time.perf_counter() - started) * 1000
    if response.anonymous:
        response.hint = anonymous_hint(user=user)
    return SearchResponseSerializer(response).data


class SearchView(APIView):
    """Hybrid (BM25 + vector, fused by RRF), keyword or semantic search over the chunks
    you may read. Anonymous callers search public collections only."""

    # POST is a read here (the body carries the query); access is decided in the SQL.
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Search (query in a JSON body)",
        request=SearchRequestSerializer,
        responses={200: SearchResponseSerializer, **SEARCH_ERRORS},
    )
    def post(self, request: Request) -> Response:
        return self._search(request, request.data)

    @extend_schema(
        summary="Search (query in the URL)",
        parameters=[SearchRequestSerializer],
        responses={200: SearchResponseSerializer, **SEARCH_ERRORS},
    )
    def get(self, request: Request) -> Response:
        return self._search(request, request.query_params)

    def _search(self, request: Request, data: Any) -> Response:
        started = time.perf_counter()
        params = SearchRequestSerializer(data=data)
        params.is_valid(raise_exception=True)
        try:
            response = search(SearchParams(**params.validated_data), user=request.user)
        except SEARCH_FAILURES as exc:
            raise search_api_error(exc) from exc
        body = search_response_body(response, user=request.user, started=started)
        return query_logged(
            Response(body),
            request=request,
            endpoint="search",
            params=params.validated_data,
            result=response,
        )


class ChunkDetailView(APIView):
    @extend_schema(
        summary="Get a chunk with its citation and neighbours",
        responses={200: ChunkSerializer, 404: NOT_FOUND},
    )
    def get(self, request: Request, pk: int) -> Response:
        """A chunk with its citation and its neighbours in the document."""
        try:
            detail = chunk_detail(chunk_id=pk, user=request.user)
        except Chunk.DoesNotExist as exc:
            raise Http404 from exc
        detail.pop("embedding")
        return Response(ChunkSerializer(detail).data)


class ChunkSimilarView(APIView):
    @extend_schema(
        summary="Find chunks similar to a chunk",
        parameters=[OpenApiParameter("top_k", int, description="1..SEARCH_MAX_TOP_K")],
        responses={200: SearchResponseSerializer, 404: NOT_FOUND, **SEARCH_ERRORS},
    )
    def get(self, request: Request, pk: int) -> Response:
        """More like this chunk: the nearest chunks you may read, itself excluded."""
        started = time.perf_counter()
        params = SimilarRequestSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        try:
            detail = chunk_detail(chunk_id=pk, user=request.user)
        except Chunk.DoesNotExist as exc:
            raise Http404 from exc
        if detail["embedding"] is None:
            raise Http404("this chunk has no embedding yet")
        try:
            response = search_similar(
                chunk_id=pk,
                embedding=detail["embedding"],
                top_k=params.validated_data["top_k"],
                user=request.user,
            )
        except SearchTimeout as exc:
            raise search_api_error(exc) from exc
        response.query = detail["text"][:200]
        body = search_response_body(response, user=request.user, started=started)
        return query_logged(
            Response(body),
            request=request,
            endpoint="similar",
            params={"chunk_id": pk, **params.validated_data},
            result=response,
        )

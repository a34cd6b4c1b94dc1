"""`POST /api/v1/context/` and `POST /api/v1/ask/` (whole, or streamed as Server-Sent
Events)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpResponseBase, StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from insights.recording import query_logged
from ragsite.api.parsers import JSONParser  # DRF's, with a depth cap
from ragsite.api.schema import ApiErrorSerializer
from search.api_errors import BAD_REQUEST, SEARCH_FAILURES, TIMED_OUT, search_api_error
from search.rag import (
    AnswerStream,
    LLMError,
    answer_create,
    answer_stream_open,
    context_build,
    context_params,
)
from search.rag.serializers import (
    AskRequestSerializer,
    AskResponseSerializer,
    ContextCitationSerializer,
    ContextRequestSerializer,
    ContextResponseSerializer,
)
from search.selectors import anonymous_hint

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
ANSWER_DESCRIPTION = """The answer as JSON; with `"stream": true`, Server-Sent Events,
each `event: <name>` with one line of JSON `data`, in this order:

- `retrieval`: the context the model was given (as answered by `/api/v1/context/`);
- `token` (many): `{"text": "..."}`, the answer as it is written;
- `citations`: `{"citations": [...]}`, the passages the answer cites;
- `done`: `{"model", "finish_reason", "timing"}`, always last.

A model failure after the stream began sends `error` (`{"detail", "status"}`: 503 or 504)
instead of `citations`, then `done`."""

# Before OpenAPI 3.2, an event stream's schema describes one event.
STREAM_EVENT = {
    "type": "object",
    "properties": {
        "event": {
            "type": "string",
            "enum": ["retrieval", "token", "citations", "error", "done"],
        },
        "data": {"type": "string", "description": "One line of JSON."},
    },
    "required": ["event", "data"],
}


class ContextView(APIView):
    """Prompt-ready context for a query: hybrid retrieval (with the search options), merged
    and deduplicated passages with numbered citations, sanitised, within a token budget.
    Only collections you may read are used."""

    # POST is a read here (the body carries the query); access is decided in the SQL.
    permission_classes = [permissions.AllowAny]
    # JSON only: form encodings cannot say null (mmr_lambda, min_score) or nest filters.
    parser_classes = [JSONParser]

    @extend_schema(
        summary="Build prompt-ready context for a query",
        request=ContextRequestSerializer,
        responses={
            (200, JSON): ContextResponseSerializer,
            (400, JSON): BAD_REQUEST,
            (503, JSON): TIMED_OUT,
        },
    )
    def post(self, request: Request) -> Response:
        params = ContextRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        try:
            context = context_build(params=context_params(params.validated_data), user=request.user)
        except SEARCH_FAILURES as exc:
            raise search_api_error(exc) from exc
        if context.anonymous:
            context.hint = anonymous_hint(user=request.user)
        return query_logged(
            Response(ContextResponseSerializer(context).data),
            request=request,
            endpoint="context",
            params=params.validated_data,
            result=context,
        )


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + JSONRenderer().render(data) + b"\n\n"


class EventStreamBody:
    """The SSE body of a streamed answer. Django calls close() when the response ends,
    also when the client went away before the first event, which frees the model's
    connection."""

    def __init__(self, stream: AnswerStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        for name, data in self._stream.events():
            if name == "retrieval":
                yield _event(name, ContextResponseSerializer(data).data)
            elif name == "token":
                yield _event(name, {"text": data})
            elif name == "citations":
                yield _event(name, {"citations": ContextCitationSerializer(data, many=True).data})
            elif name == "error":
                yield _event(name, {"detail": str(data), "status": data.status})
            else:
                yield _event(name, data)

    def close(self) -> None:
        self._stream.close()


class AskView(APIView):
    """Answer a question from the documents you may read: the context as in
    `/api/v1/context/`, then an OpenAI-compatible chat model told to answer only from it
    and cite passages as [n]. 503 when no model is configured or the model fails; 504 when
    it does not answer within LLM_TIMEOUT."""

    permission_classes = [permissions.AllowAny]
    parser_classes = [JSONParser]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # Stream clients send `Accept: text/event-stream`, which no renderer offers: the
        # stream bypasses renderers, and the whole answer and errors answer JSON anyway.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        summary="Answer a question from your documents, with citations",
        request=AskRequestSerializer,
        responses={
            # Both 200s form one response in the schema, described by the first.
            (200, JSON): OpenApiResponse(AskResponseSerializer, description=ANSWER_DESCRIPTION),
            (200, EVENT_STREAM): STREAM_EVENT,
            (400, JSON): BAD_REQUEST,
            (503, JSON): OpenApiResponse(
                ApiErrorSerializer,
                description="No language model configured (LLM_BASE_URL), the model "
                "cannot be reached or failed, or the search ran past "
                "SEARCH_STATEMENT_TIMEOUT_MS; `detail` says which.",
            ),
            (504, JSON): OpenApiResponse(
                ApiErrorSerializer, description="The model did not answer within LLM_TIMEOUT."
            ),
        },
    )
    def post(self, request: Request) -> HttpResponseBase:
        params = AskRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        values = params.validated_data
        try:
            if values["stream"]:
                stream = answer_stream_open(params=context_params(values), user=request.user)
                # Logged once retrieval is done; a streamed answer's text is not kept.
                return query_logged(
                    self._stream(stream),
                    request=request,
                    endpoint="ask",
                    params=values,
                    result=stream.context,
                    llm_model=settings.LLM_MODEL or "llm",  # the row takes answer votes
                )
            answer = answer_create(params=context_params(values), user=request.user)
        except SEARCH_FAILURES as exc:
            raise search_api_error(exc) from exc
        except LLMError as exc:
            return Response({"detail": str(exc)}, status=exc.status)
        return query_logged(
            Response(AskResponseSerializer(answer).data),
            request=request,
            endpoint="ask",
            params=values,
            result=answer,
        )

    def _stream(self, stream: AnswerStream) -> StreamingHttpResponse:
        response = StreamingHttpResponse(
            EventStreamBody(stream), content_type=f"{EVENT_STREAM}; charset=utf-8"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx would hold the events back otherwise
        return response

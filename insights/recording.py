"""The hooks the search interfaces call once their answer is computed: each turns that
answer into one query log row. Duck-typed on the search and RAG results (SearchResponse,
Context, Answer) so this app imports nothing of `search` and `evaluate`/bench, which call
search() directly, never log.

    return query_logged(Response(body), request=request, endpoint="search",
                        params=params, result=response)
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar

from django.http import HttpRequest, HttpResponseBase

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from insights.metrics import search_observe
from insights.request_id import current_request_id
from insights.selectors import query_log_same_search
from insights.services import Hit, query_log_create

HEADER = "X-Query-Log-Id"  # the row's id, for POST /api/v1/feedback/
Resp = TypeVar("Resp", bound=HttpResponseBase)


def _is_dataclass(value: Any) -> TypeGuard[DataclassInstance]:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _params(params: Any) -> dict[str, Any]:
    """The request's parameters without the query (kept in its own column)."""
    if _is_dataclass(params):
        values = dataclasses.asdict(params)
    else:
        values = {
            key: dataclasses.asdict(value) if _is_dataclass(value) else value
            for key, value in dict(params or {}).items()
        }
    values.pop("query", None)
    search = values.pop("search", None)
    if isinstance(search, dict):  # ContextParams: the search's fields, then max_tokens/order
        search.pop("query", None)
        values = {**search, **values}
    return values


def _slugs(values: dict[str, Any]) -> list[str] | None:
    filters = values.get("filters") or {}
    slugs = filters.get("collections") if isinstance(filters, dict) else None
    return list(slugs) if slugs else None


def _total(timing: dict[str, float]) -> float:
    if timing.get("total_ms") is not None:
        return float(timing["total_ms"])
    return float(sum(v for v in timing.values() if isinstance(v, int | float)))


def _similarity(result: Any) -> float | None:
    value = getattr(result, "semantic_score", None)
    return None if value is None else float(value)


def _fields(result: Any) -> dict[str, Any]:
    """What a SearchResponse, a Context or an Answer says about the search."""
    answer = ""
    llm_model = ""
    if hasattr(result, "context") and hasattr(result, "citations"):  # an Answer
        answer, llm_model = result.text, result.model
        timing = {**result.context.timing_ms, **result.timing_ms}
        result = result.context
    else:
        timing = dict(result.timing_ms)
    if hasattr(result, "results"):  # a SearchResponse
        hits = [
            Hit(r.chunk_id, r.document_id, float(r.score), _similarity(r)) for r in result.results
        ]
        count = len(result.results)
    else:  # a Context: its passages
        hits = [
            Hit(p.chunk_id, p.document_id, float(p.score), _similarity(p)) for p in result.citations
        ]
        count = len(hits)
    return {
        "query": result.query,
        "mode": result.mode,
        "timing_ms": timing,
        "total_ms": _total(timing),
        "hits": hits,
        "result_count": count,
        "answer": answer,
        "llm_model": llm_model,
        # The models that served it (one per semantic leg) and whether a reranker ran.
        "model": ",".join(getattr(result, "models", None) or []),
        "reranked": getattr(result, "reranker", None) is not None,
    }


def _record(
    *, user: Any, endpoint: str, values: dict[str, Any], fields: dict[str, Any]
) -> int | None:
    search_observe(
        endpoint=endpoint,
        mode=fields["mode"],
        timing_ms=fields["timing_ms"],
        total_ms=fields["total_ms"],
        results=fields["result_count"],
    )
    return query_log_create(
        user=user,
        endpoint=endpoint,
        params=values,
        collection_slugs=_slugs(values),
        request_id=current_request_id(),
        **fields,
    )


def query_log_result(
    *, user: Any, endpoint: str, params: Any, result: Any, llm_model: str = ""
) -> int | None:
    """Log one computed search/context/answer and count it in the metrics; returns the
    row's id (None: logging off). `llm_model`: the model answering a streamed answer,
    whose row is written before the answer exists (its feedback needs one)."""
    fields = _fields(result)
    if llm_model and not fields["llm_model"]:
        fields["llm_model"] = llm_model
    return _record(user=user, endpoint=endpoint, values=_params(params), fields=fields)


def query_logged(
    response: Resp,
    *,
    request: HttpRequest,
    endpoint: str,
    params: Any,
    result: Any,
    llm_model: str = "",
) -> Resp:
    """Log the computed result and name its row in the `X-Query-Log-Id` header."""
    pk = query_log_result(
        user=request.user, endpoint=endpoint, params=params, result=result, llm_model=llm_model
    )
    if pk is not None:
        response[HEADER] = str(pk)
    return response


def page_logged(*, request: HttpRequest, context: dict[str, Any]) -> dict[str, Any]:
    """The search page: log the search it ran (and the answer, when asked) and give the
    page the row's id for its feedback forms. A page that ran no search logs nothing."""
    params, response = context.get("search_params"), context.get("search_response")
    if params is None or response is None:
        return context
    answer = context.get("answer")
    fields = _fields(response)
    fields["total_ms"] = float(context.get("elapsed_ms", fields["total_ms"]))
    if answer is not None:
        fields["answer"], fields["llm_model"] = answer.text, answer.model
        fields["timing_ms"] = {**fields["timing_ms"], "llm_ms": answer.timing_ms.get("llm_ms")}
    values = _params(params)
    again = query_log_same_search(
        pk=request.GET.get("logged"), user=request.user, query=response.query, params=values
    )
    if again is not None and answer is None:  # back from a vote: already logged
        context["query_log_id"] = again
        return context
    context["query_log_id"] = _record(
        user=request.user, endpoint="page", values=values, fields=fields
    )
    return context

"""What the search page shows: the form's state, the results as cards, pagination and the
empty states. The view only renders what `search_page_context` returns."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.http import QueryDict

from documents.citations import document_url, pages_label
from documents.models import Document
from documents.selectors import User, collection_list_readable, document_list_readable
from documents.viewer import search_state
from search.forms import MODE_LABELS, SearchForm
from search.rag import (
    CITATION,
    Answer,
    ContextParams,
    LLMError,
    Passage,
    answer_create,
    llm_config,
)
from search.retrieval import (
    Filters,
    QueryError,
    SearchParams,
    SearchResult,
    SearchTimeout,
    SemanticUnavailable,
    search,
)
from search.snippets import SnippetSource, passage_snippets

PAGE_SIZE = 10
UPLOAD_URL = "/admin/documents/document/upload/"


@dataclass(frozen=True)
class Library:
    """How many readable documents there are, and how many are not searchable yet."""

    documents: int
    busy: int  # pending or processing
    failed: int


@dataclass(frozen=True)
class LegExplanation:
    name: str
    rank: int | None
    score: str | None
    measure: str  # what the score is
    used: bool  # whether the mode runs this leg at all


@dataclass(frozen=True)
class ResultCard:
    result: SearchResult
    url: str
    pages: str
    collection_name: str
    heading: str
    snippet: str  # HTML: escaped, with query terms in <mark>
    legs: list[LegExplanation]
    fused: str  # how the final score came about


@dataclass(frozen=True)
class AnswerPart:
    """A piece of an answer: plain text, or a citation [n] linking to its passage."""

    text: str
    number: int | None = None
    url: str = ""
    title: str = ""


@dataclass(frozen=True)
class PageLink:
    number: int
    url: str
    current: bool


@dataclass(frozen=True)
class Pagination:
    number: int
    count: int
    previous_url: str | None
    next_url: str | None
    links: list[PageLink]


def library_status(*, user: User) -> Library:
    counts = document_list_readable(user=user).aggregate(
        documents=Count("id"),
        busy=Count(
            "id", filter=Q(status__in=[Document.Status.PENDING, Document.Status.PROCESSING])
        ),
        failed=Count("id", filter=Q(status=Document.Status.FAILED)),
    )
    return Library(**counts)


def page_url(data: QueryDict, **changes: Any) -> str:
    """This search's URL with some parameters changed (None removes one)."""
    query = data.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None and not (key == "page" and value == 1):
            query[key] = str(value)
    return "?" + query.urlencode()


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + "."


def _number(value: float | None, digits: int) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def explain(result: SearchResult, *, mode: str) -> tuple[list[LegExplanation], str]:
    """Each leg's rank and score, and how the final score was made from them."""
    defaults = settings.SEARCH_DEFAULTS
    legs = [
        LegExplanation(
            name="Keyword (BM25)",
            rank=result.keyword_rank,
            score=_number(result.keyword_score, 3),
            measure="BM25 score",
            used=mode in ("hybrid", "keyword"),
        ),
        LegExplanation(
            name="Semantic (embedding)",
            rank=result.semantic_rank,
            score=_number(result.semantic_score, 3),
            measure="cosine similarity",
            used=mode in ("hybrid", "semantic"),
        ),
    ]
    if mode == "keyword":
        return legs, f"{result.score:.3f} (the BM25 score)"
    if mode == "semantic":
        return legs, f"{result.score:.3f} (the cosine similarity)"
    if result.alpha is not None:  # score fusion: the alpha the search applied to this one
        alpha = result.alpha
        return legs, (
            f"{result.score:.4f} = {alpha:g} × {result.semantic_norm or 0:.3f} (semantic) "
            f"+ {1 - alpha:g} × {result.keyword_norm or 0:.3f} (keyword): each leg's score "
            "scaled to 0–1 among its candidates"
        )
    rrf_k = defaults["rrf_k"]
    terms = []
    for rank, weight in (
        (result.keyword_rank, defaults["keyword_weight"]),
        (result.semantic_rank, defaults["semantic_weight"]),
    ):
        if rank is not None:
            prefix = "" if weight == 1 else f"{weight:g} × "
            terms.append(f"{prefix}1/({rrf_k} + {rank})")
    return legs, f"{result.score:.4f} = " + " + ".join(terms) + " (reciprocal rank fusion)"


def result_card(
    result: SearchResult,
    *,
    mode: str,
    collection_names: dict[str, str],
    snippet: str | None = None,
    back: str = "",
) -> ResultCard:
    """A result as the page shows it; `snippet` replaces the search's own (ts_headline)
    snippet, `back` is the search's state for the document page's way back."""
    legs, fused = explain(result, mode=mode)
    return ResultCard(
        result=result,
        url=document_url(result.document_id, result.chunk_id, back=back),
        pages=pages_label(result.first_page, result.last_page),
        collection_name=collection_names.get(result.collection, result.collection),
        heading=" › ".join(result.heading_path),
        snippet=result.snippet if snippet is None else snippet,
        legs=legs,
        fused=fused,
    )


def pagination(data: QueryDict, *, number: int, total: int) -> Pagination | None:
    count = math.ceil(total / PAGE_SIZE)
    if count <= 1:
        return None
    window = range(max(1, number - 2), min(count, number + 2) + 1)
    return Pagination(
        number=number,
        count=count,
        previous_url=page_url(data, page=number - 1) if number > 1 else None,
        next_url=page_url(data, page=number + 1) if number < count else None,
        links=[PageLink(n, page_url(data, page=n), n == number) for n in window],
    )


def result_count_label(total: int, *, mode: str = "hybrid") -> str:
    """`total` counts the candidates both legs found (each capped at its depth), so past
    the depth it is a lower bound. In semantic mode every passage is a candidate, ranked
    by closeness: the count says how many the ranking covers, not how many matched."""
    if mode == "semantic":
        depth = settings.SEARCH_DEFAULTS["semantic_depth"]
        if total >= depth:
            return f"Top {depth} passages by meaning"
        return f"{total} passage{'' if total == 1 else 's'} ranked by meaning"
    depth = min(
        settings.SEARCH_DEFAULTS["keyword_depth"], settings.SEARCH_DEFAULTS["semantic_depth"]
    )
    if total >= depth:
        return f"About {total} results"
    return f"{total} result{'' if total == 1 else 's'}"


def _initial(data: QueryDict) -> dict[str, Any]:
    mode = data.get("mode")
    return {
        "mode": mode if mode in MODE_LABELS else "hybrid",
        "collection": data.getlist("collection"),
    }


def answer_parts(text: str, passages: list[Passage], *, back: str = "") -> list[AnswerPart]:
    """The answer as text and links, so the template escapes the model's words and only
    the citation links are ours; `back` is the search to return to from a citation."""
    by_number = {p.number: p for p in passages}
    parts: list[AnswerPart] = []
    position = 0
    for match in CITATION.finditer(text):
        numbers = [int(n) for n in re.split(r"\s*[,;]\s*", match.group(1))]
        if not all(n in by_number for n in numbers):
            continue  # a number that names no passage stays plain text
        parts.append(AnswerPart(text[position : match.start()]))
        for n in numbers:
            passage = by_number[n]
            url = document_url(passage.document_id, passage.chunk_id, back=back)
            parts.append(AnswerPart(f"[{n}]", n, url, passage.document_title))
        position = match.end()
    parts.append(AnswerPart(text[position:]))
    return [part for part in parts if part.text]


def _answer(form: SearchForm, *, user: User, back: str) -> dict[str, Any]:
    """The model's answer to the searched query over the same collections, or why not."""
    values = form.cleaned_data
    slugs = values["collection"]
    params = ContextParams(
        search=SearchParams(
            query=values["q"],
            mode=values["mode"],
            filters=Filters(collections=slugs) if slugs else Filters(),
            rerank=form.rerank_choice(),
        ),
        max_tokens=settings.RAG_CONTEXT_TOKENS,
    )
    try:
        answer: Answer = answer_create(params=params, user=user)
    except QueryError as exc:
        return {"answer_error": _sentence(exc.message)}
    except (LLMError, SearchTimeout, SemanticUnavailable) as exc:
        return {"answer_error": _sentence(str(exc))}
    return {
        "answer": answer,
        "answer_parts": answer_parts(answer.text, answer.context.citations, back=back),
        "answer_sources": [
            (
                p,
                document_url(p.document_id, p.chunk_id, back=back),
                pages_label(p.first_page, p.last_page),
            )
            for p in answer.citations
        ],
    }


def search_page_context(*, data: QueryDict, user: User, ask: bool = False) -> dict[str, Any]:
    """The page for a search; `ask` (a posted Ask form) adds the model's answer."""
    collections = list(collection_list_readable(user=user).only("name", "slug"))
    if "q" in data:
        form = SearchForm(data, collections=collections)
    else:  # not searched yet; a link may still preselect the mode or collection
        form = SearchForm(collections=collections, initial=_initial(data))
    context: dict[str, Any] = {
        "form": form,
        "library": library_status(user=user),
        "collection_count": len(collections),
        "max_query_chars": settings.SEARCH_MAX_QUERY_CHARS,
        "upload_url": UPLOAD_URL,
        "searched": False,
    }
    if form.is_bound and form.is_valid():
        names = {c.slug: c.name for c in collections}
        context.update(_search_results(form, data=data, user=user, collection_names=names))
    config = llm_config()
    context["ask_model"] = config.model if config else None
    if ask and config and context.get("cards"):
        context.update(_answer(form, user=user, back=search_state(data)))
    return context


def _cards(
    results: list[SearchResult], *, params: SearchParams, data: QueryDict, names: dict[str, str]
) -> list[ResultCard]:
    """The cards; a result the keyword leg did not find (all of them in semantic mode) gets
    the passage of its chunk that best matches the query as its snippet (search/snippets.py)."""
    picked = passage_snippets(
        params.query,
        [
            SnippetSource(r.chunk_id, r.text)
            for r in results
            if params.mode == "semantic" or r.keyword_rank is None
        ],
    )
    back = search_state(data)
    return [
        result_card(
            r, mode=params.mode, collection_names=names, snippet=picked.get(r.chunk_id), back=back
        )
        for r in results
    ]


def _search_results(
    form: SearchForm, *, data: QueryDict, user: User, collection_names: dict[str, str]
) -> dict[str, Any]:
    """Run the form's search; a query the service rejects becomes a form error."""
    values = form.cleaned_data
    number = values["page"]
    offset = (number - 1) * PAGE_SIZE
    slugs = values["collection"]
    params = SearchParams(
        query=values["q"],
        mode=values["mode"],
        top_k=PAGE_SIZE,
        offset=offset,
        filters=Filters(collections=slugs) if slugs else Filters(),
        rerank=form.rerank_choice(),
    )
    started = time.perf_counter()
    try:
        response = search(params, user=user)
    except QueryError as exc:
        form.add_error("q", _sentence(exc.message))
        return {}
    except (SearchTimeout, SemanticUnavailable) as exc:
        form.add_error(None, _sentence(str(exc)))
        return {}
    elapsed_ms = (time.perf_counter() - started) * 1000
    cards = _cards(response.results, params=params, data=data, names=collection_names)
    return {
        "searched": True,
        "query": params.query,
        "mode_label": MODE_LABELS[params.mode],
        "cards": cards,
        "count_label": result_count_label(response.total, mode=params.mode),
        "elapsed_ms": elapsed_ms,
        "first_position": offset + 1,
        "last_position": offset + len(cards),
        "pagination": pagination(data, number=number, total=response.total),
        "past_end": not cards and number > 1,
        "first_page_url": page_url(data, page=None),
        "other_modes": [
            (label, page_url(data, mode=mode, page=None))
            for mode, label in MODE_LABELS.items()
            if mode != params.mode
        ],
        "filtered": bool(slugs),
        "mode": params.mode,
        "reranker": response.reranker,
        "notices": response.notices,
        "collections": slugs,
        "all_collections_url": page_url(data, collection=None, page=None),
        # For the query log (insights.recording.page_logged), not for the template.
        "search_params": params,
        "search_response": response,
    }

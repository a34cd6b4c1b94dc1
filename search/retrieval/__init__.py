"""Retrieval: the one search used by the API, the page and the evaluation.

from search.retrieval import SearchParams, Filters, search
response = search(SearchParams(query="...", mode="hybrid"), user=request.user)
"""

from search.retrieval._search import (
    QueryError,
    SearchTimeout,
    SemanticUnavailable,
    render_snippet,
    search,
    search_similar,
)
from search.retrieval.types import (
    FUSIONS,
    MODES,
    Filters,
    SearchParams,
    SearchResponse,
    SearchResult,
)

__all__ = [
    "FUSIONS",
    "MODES",
    "Filters",
    "QueryError",
    "SearchParams",
    "SearchResponse",
    "SearchResult",
    "SearchTimeout",
    "SemanticUnavailable",
    "render_snippet",
    "search",
    "search_similar",
]

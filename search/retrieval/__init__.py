"""Retrieval: the one search used by the API, the page and the evaluation.

from search.retrieval import SearchParams, Filters, search
response = search(SearchParams(query="...", mode="hybrid"), user=request.user)
"""

from search.retrieval._search import (
    QueryError,
    SearchTimeout,
    render_snippet,
    search,
    search_similar,
)
from search.retrieval.types import (
    MODES,
    Filters,
    SearchParams,
    SearchResponse,
    SearchResult,
)

__all__ = [
    "MODES",
    "Filters",
    "QueryError",
    "SearchParams",
    "SearchResponse",
    "SearchResult",
    "SearchTimeout",
    "render_snippet",
    "search",
    "search_similar",
]

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings

Mode = Literal["hybrid", "keyword", "semantic"]
MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
Fusion = Literal["rrf", "score"]
FUSIONS: tuple[str, ...] = ("rrf", "score")


@dataclass(frozen=True)
class Filters:
    collections: list[str] | None = None  # slugs
    documents: list[int] | None = None
    metadata: dict[str, Any] | None = None  # JSONB containment
    metadata_any: dict[str, list[Any]] | None = None  # key: any of these values
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    mime_types: list[str] | None = None


def _default(name: str) -> Any:
    return settings.SEARCH_DEFAULTS[name]


@dataclass(frozen=True)
class SearchParams:
    query: str
    mode: Mode = "hybrid"
    top_k: int = 10
    offset: int = 0
    filters: Filters = field(default_factory=Filters)
    # The fusion defaults come from SEARCH_DEFAULTS (the one place they are set), so the
    # API, the page and `manage.py evaluate` search alike unless told otherwise.
    rrf_k: int = field(default_factory=lambda: _default("rrf_k"))
    keyword_weight: float = field(default_factory=lambda: _default("keyword_weight"))
    semantic_weight: float = field(default_factory=lambda: _default("semantic_weight"))
    # rrf: by rank; score: min-max normalised scores, alpha * semantic + (1 - alpha) * keyword.
    fusion: Fusion = field(default_factory=lambda: _default("fusion"))
    # None: each chunk's collection's alpha (Collection.search_alpha), else SEARCH_ALPHA.
    alpha: float | None = None
    keyword_depth: int = field(default_factory=lambda: _default("keyword_depth"))
    semantic_depth: int = field(default_factory=lambda: _default("semantic_depth"))
    min_score: float | None = None
    mmr_lambda: float | None = None
    neighbors: int = 0
    group_by_document: bool = False
    # Exact nearest neighbours (no HNSW): for measuring the index, not for serving.
    exact: bool = False
    # Rerank the first rerank_depth fused candidates (None: settings.RERANK_DEFAULT).
    rerank: bool | None = None
    rerank_depth: int = field(default_factory=lambda: settings.RERANK_DEPTH)


@dataclass
class SearchResult:
    chunk_id: int
    text: str
    snippet: str  # HTML: query terms in <mark>, everything else escaped
    document_id: int
    document_title: str
    source_name: str
    collection: str
    ordinal: int
    char_start: int
    char_end: int
    first_page: int | None
    last_page: int | None
    heading_path: list[str]
    score: float
    keyword_rank: int | None
    keyword_score: float | None
    semantic_rank: int | None
    semantic_score: float | None
    metadata: dict[str, Any] = field(default_factory=dict)
    neighbors: list[dict[str, Any]] = field(default_factory=list)
    rerank_score: float | None = None  # the reranker's, when it ranked this candidate
    # Score fusion only: each leg's score scaled to [0, 1] within the leg, and the alpha
    # that weighed them (score = alpha * semantic_norm + (1 - alpha) * keyword_norm).
    keyword_norm: float | None = None
    semantic_norm: float | None = None
    alpha: float | None = None
    rank_before_rerank: int | None = None  # 1-based, in the fused order
    embedding: Any = None  # only kept internally for MMR


@dataclass
class SearchResponse:
    results: list[SearchResult]
    total: int  # candidates that passed the filters and min_score (before offset/top_k)
    timing_ms: dict[str, float]
    mode: str
    query: str = ""
    anonymous: bool = False  # searched as an anonymous caller: public collections only
    hint: str | None = None  # for the caller, e.g. why an anonymous search found nothing
    # What changed how this search was served (a leg skipped because its model server is
    # down, a reranker that failed): shown to the caller, never an error.
    notices: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)  # embedding models that served it
    reranker: str | None = None  # the reranker that ordered the results, if any

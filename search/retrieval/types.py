from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["hybrid", "keyword", "semantic"]
MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")


@dataclass(frozen=True)
class Filters:
    collections: list[str] | None = None  # slugs
    documents: list[int] | None = None
    metadata: dict[str, Any] | None = None  # JSONB containment
    metadata_any: dict[str, list[Any]] | None = None  # key: any of these values
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    mime_types: list[str] | None = None


@dataclass(frozen=True)
class SearchParams:
    query: str
    mode: Mode = "hybrid"
    top_k: int = 10
    offset: int = 0
    filters: Filters = field(default_factory=Filters)
    rrf_k: int = 60
    keyword_weight: float = 1.0
    semantic_weight: float = 1.0
    keyword_depth: int = 200
    semantic_depth: int = 200
    min_score: float | None = None
    mmr_lambda: float | None = None
    neighbors: int = 0
    group_by_document: bool = False
    # Exact nearest neighbours (no HNSW): for measuring the index, not for serving.
    exact: bool = False


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
    embedding: Any = None  # only kept internally for MMR


@dataclass
class SearchResponse:
    results: list[SearchResult]
    total: int  # candidates that passed the filters and min_score (before offset/top_k)
    timing_ms: dict[str, float]
    mode: str

from __future__ import annotations

import html
import json
import time
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction

from documents.embedding import active_model_name, embed_query
from search.retrieval._query import ParsedQuery, parse_query
from search.retrieval._sql import (
    MARK_END,
    MARK_START,
    PRUNE_MIN_TERMS,
    PRUNE_POSTINGS,
    PRUNE_POSTINGS_MAX,
    build_search_sql,
    chunk_filter_sql,
)
from search.retrieval.types import SearchParams, SearchResponse, SearchResult

MMR_POOL_FACTOR = 4


class QueryError(ValueError):
    """A query that cannot be searched; the message names the problem."""


def render_snippet(headline: str) -> str:
    """Turn ts_headline's output (already escaped in SQL) into HTML with <mark> elements."""
    if "<" in headline or ">" in headline or '"' in headline:
        headline = html.escape(html.unescape(headline))  # never trust it to be escaped
    return headline.replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")


def search(
    params: SearchParams,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    full_access: bool = False,
) -> SearchResponse:
    """Run a search as `user` sees the collections (management commands and the
    evaluation pass `full_access`). The same path serves the API, the page and the
    evaluation."""
    parsed = parse_query(params.query)
    if not parsed.text.strip():
        raise QueryError("query: needs at least one word to search for")
    timing: dict[str, float] = {}
    embedding = None
    if params.mode in ("hybrid", "semantic"):
        started = time.perf_counter()
        embedding = embed_query(parsed.text)
        timing["embedding_ms"] = (time.perf_counter() - started) * 1000
    return _execute(params, parsed, embedding, user=user, timing=timing, full_access=full_access)


def search_similar(
    *,
    chunk_id: int,
    embedding: np.ndarray,
    top_k: int,
    user: AbstractBaseUser | AnonymousUser | None,
) -> SearchResponse:
    """More like this chunk: its nearest neighbours among readable chunks, itself excluded."""
    params = SearchParams(query="", mode="semantic", top_k=top_k, semantic_depth=max(top_k + 1, 40))
    return _execute(
        params,
        ParsedQuery(text=""),
        np.asarray(embedding, dtype=np.float32),
        user=user,
        timing={},
        exclude_chunk_id=chunk_id,
    )


def _execute(
    params: SearchParams,
    parsed: ParsedQuery,
    embedding: np.ndarray | None,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    timing: dict[str, float],
    exclude_chunk_id: int | None = None,
    full_access: bool = False,
) -> SearchResponse:
    chunk_filters, filter_params = chunk_filter_sql(
        params.filters,
        phrases=parsed.phrases,
        excluded=parsed.excluded,
        excluded_phrases=parsed.excluded_phrases,
    )
    if exclude_chunk_id is not None:
        chunk_filters += " AND c.id <> %(exclude_chunk)s"
        filter_params["exclude_chunk"] = exclude_chunk_id
    use_mmr = params.mmr_lambda is not None
    limit = params.top_k
    if use_mmr:
        limit = max(params.top_k * MMR_POOL_FACTOR, 50)
    sql = build_search_sql(mode=params.mode, chunk_filters=chunk_filters, with_embeddings=use_mmr)
    signed_in = user is not None and bool(user.is_authenticated)
    sql_params: dict[str, Any] = {
        "full_access": full_access or (signed_in and bool(user.is_superuser)),
        "user_id": user.pk if signed_in else None,
        "collection_slugs": params.filters.collections,
        "query_text": parsed.text,
        "prune_min_terms": PRUNE_MIN_TERMS,
        "prune_postings": PRUNE_POSTINGS,
        "prune_postings_max": PRUNE_POSTINGS_MAX,
        "keyword_depth": params.keyword_depth,
        "semantic_depth": params.semantic_depth,
        "embedding": _vector_literal(embedding) if embedding is not None else None,
        "model": active_model_name(),
        "exact_max_chunks": settings.SEARCH_EXACT_MAX_CHUNKS,
        "rrf_k": float(params.rrf_k),
        "keyword_weight": float(params.keyword_weight),
        "semantic_weight": float(params.semantic_weight),
        "min_score": params.min_score,
        "group_by_document": params.group_by_document,
        "limit": limit,
        "offset": 0 if use_mmr else params.offset,
        **filter_params,
    }
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if embedding is not None:
            # ef_search caps how many rows an HNSW scan can return; iterative scans keep
            # going past filtered-out rows so a filtered query still fills its depth.
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                " set_config('hnsw.max_scan_tuples', %s, true)",
                [
                    str(max(40, min(1000, params.semantic_depth))),
                    str(settings.SEARCH_HNSW_MAX_SCAN_TUPLES),
                ],
            )
            if params.exact:
                cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
        cursor.execute(sql, sql_params)
        rows = cursor.fetchall()
        results = [_result(row) for row in rows]
        total = int(rows[0][6]) if rows else 0
        if use_mmr:
            results = _mmr(results, embedding, lambda_=params.mmr_lambda or 0.5)
            results = results[params.offset : params.offset + params.top_k]
        if params.neighbors and results:
            _attach_neighbors(cursor, results, params.neighbors)
    timing["sql_ms"] = (time.perf_counter() - started) * 1000
    for result in results:
        result.embedding = None
    return SearchResponse(results=results, total=total, timing_ms=timing, mode=params.mode)


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


def _result(row: tuple[Any, ...]) -> SearchResult:
    (
        chunk_id,
        score,
        kw_rank,
        kw_score,
        sem_rank,
        sem_score,
        _total,
        text,
        ordinal,
        char_start,
        char_end,
        first_page,
        last_page,
        heading_path,
        document_id,
        title,
        source_name,
        metadata,
        collection,
        headline,
        embedding,
    ) = row
    return SearchResult(
        chunk_id=chunk_id,
        text=text,
        snippet=render_snippet(headline or ""),
        document_id=document_id,
        document_title=title or source_name,
        source_name=source_name,
        collection=collection,
        ordinal=ordinal,
        char_start=char_start,
        char_end=char_end,
        first_page=first_page,
        last_page=last_page,
        heading_path=list(heading_path or []),
        score=float(score),
        keyword_rank=kw_rank,
        keyword_score=None if kw_score is None else float(kw_score),
        semantic_rank=sem_rank,
        semantic_score=None if sem_score is None else float(sem_score),
        metadata=json.loads(metadata) if isinstance(metadata, str) else (metadata or {}),
        embedding=embedding,
    )


def _mmr(
    results: list[SearchResult], query: np.ndarray | None, *, lambda_: float
) -> list[SearchResult]:
    """Maximal marginal relevance: trade relevance for novelty among the candidates.

    Relevance is the candidate's normalised fused score (so it works in every mode);
    novelty is its cosine distance to what was already picked.
    """
    if len(results) <= 1:
        return results
    vectors = np.array([np.asarray(r.embedding, dtype=np.float32) for r in results])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    scores = np.array([r.score for r in results], dtype=np.float64)
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    picked: list[int] = []
    remaining = list(range(len(results)))
    similarity = vectors @ vectors.T
    while remaining:
        if picked:
            redundancy = similarity[np.ix_(remaining, picked)].max(axis=1)
        else:
            redundancy = np.zeros(len(remaining))
        values = lambda_ * relevance[remaining] - (1 - lambda_) * redundancy
        best = remaining[int(np.argmax(values))]
        picked.append(best)
        remaining.remove(best)
    return [results[i] for i in picked]


def _attach_neighbors(cursor: Any, results: list[SearchResult], window: int) -> None:
    """The chunks just before and after each result, as context (one more statement)."""
    pairs = [(r.document_id, r.ordinal) for r in results]
    cursor.execute(
        """
        SELECT r.document_id, r.ordinal, c.id, c.ordinal, c.text, c.char_start, c.char_end,
               c.first_page, c.last_page
        FROM unnest(%s::bigint[], %s::int[]) AS r(document_id, ordinal)
        JOIN documents_chunk c ON c.document_id = r.document_id
         AND c.ordinal BETWEEN r.ordinal - %s AND r.ordinal + %s AND c.ordinal <> r.ordinal
        ORDER BY r.document_id, r.ordinal, c.ordinal
        """,
        [[p[0] for p in pairs], [p[1] for p in pairs], window, window],
    )
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for doc_id, ordinal, cid, cord, text, start, end, first, last in cursor.fetchall():
        by_key.setdefault((doc_id, ordinal), []).append(
            {
                "chunk_id": cid,
                "ordinal": cord,
                "text": text,
                "char_start": start,
                "char_end": end,
                "first_page": first,
                "last_page": last,
                "position": "before" if cord < ordinal else "after",
            }
        )
    for result in results:
        result.neighbors = by_key.get((result.document_id, result.ordinal), [])

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import OperationalError, connections, transaction
from psycopg.errors import QueryCanceled

from documents.citations import display_title
from documents.embedding import EmbeddingError, ModelSpec, embed_query
from documents.vector_index import VectorIndex, index_for
from ragsite.db_routing import on_read_database
from search.rerank import RerankOutcome
from search.retrieval._query import ParsedQuery, parse_query
from search.retrieval._shaping import (
    MMR_POOL_FACTOR,
    QueryError,
    reorder,
    rerank_pool,
    rerank_requested,
)
from search.retrieval._sql import (
    MARK_END,
    MARK_START,
    PRUNE_MIN_TERMS,
    PRUNE_POSTINGS,
    PRUNE_POSTINGS_MAX,
    SemanticLeg,
    build_search_sql,
    chunk_filter_sql,
    scope_models_sql,
)
from search.retrieval.types import SearchParams, SearchResponse, SearchResult

logger = logging.getLogger(__name__)


class SemanticUnavailable(Exception):
    """No model of the searched collections could embed the query (its server is down):
    a semantic search cannot answer (the API says 503); hybrid falls back to keywords."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"semantic search is unavailable: {reason}")
        self.reason = reason


class SearchTimeout(Exception):
    """The search SQL ran past its statement_timeout and was cancelled."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(
            f"the search took longer than {timeout_ms} ms and was stopped; "
            "try fewer filters or a shorter query"
        )
        self.timeout_ms = timeout_ms


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
    statement_timeout_ms: int | None = None,
) -> SearchResponse:
    """Run a search as `user` sees the collections (management commands and the
    evaluation pass `full_access`). The same path serves the API, the page and the
    evaluation. The SQL is cancelled after `statement_timeout_ms` (default
    SEARCH_STATEMENT_TIMEOUT_MS, for requests; 0: never) with SearchTimeout."""
    parsed = parse_query(params.query)
    if not parsed.text.strip():
        raise QueryError("needs at least one word to search for")
    timing: dict[str, float] = {}

    def plan(cursor: Any, sql_params: dict[str, Any], notices: list[str]) -> list[_Leg]:
        if params.mode == "keyword":
            return []  # keyword search never needs a model
        cursor.execute(scope_models_sql(), sql_params)
        specs = [(ModelSpec(*row[:7]), tuple(row[7])) for row in cursor.fetchall()]
        return _query_legs(parsed.text, specs, params.mode, timing, notices)

    return _execute(
        params,
        parsed,
        plan,
        user=user,
        timing=timing,
        full_access=full_access,
        statement_timeout_ms=statement_timeout_ms,
    )


@dataclass(frozen=True)
class _Leg:
    index: VectorIndex
    embedding: np.ndarray
    dedicated: tuple[int, ...] = ()  # collections searched through their own index


def _query_legs(
    text: str,
    specs: list[tuple[ModelSpec, tuple[int, ...]]],
    mode: str,
    timing: dict[str, float],
    notices: list[str],
) -> list[_Leg]:
    """The query embedded by each model in the scope. A model that cannot embed (its
    server is down) loses its leg: a hybrid search answers from the others and the
    keyword leg with a notice; a semantic search with no leg left is SemanticUnavailable."""
    started = time.perf_counter()
    legs: list[_Leg] = []
    failures: list[str] = []
    for spec, dedicated in specs:
        try:
            vector = embed_query(text, spec)
        except EmbeddingError as exc:
            logger.warning("semantic leg of %s skipped: %s", spec.name, exc)
            failures.append(f"{spec.name}: {exc}")
            continue
        legs.append(_Leg(index_for(spec.name, spec.dimensions), vector, dedicated))
    timing["embedding_ms"] = (time.perf_counter() - started) * 1000
    if failures and mode == "semantic" and not legs:
        raise SemanticUnavailable("; ".join(failures))
    for failure in failures:
        what = "keyword results only" if not legs else "the other models' results"
        notices.append(f"semantic search unavailable for model {failure}; {what}")
    return legs


def search_similar(
    *,
    chunk_id: int,
    embedding: np.ndarray,
    top_k: int,
    user: AbstractBaseUser | AnonymousUser | None,
) -> SearchResponse:
    """More like this chunk: its nearest neighbours among readable chunks of its own
    model (other models' scores are not comparable), itself excluded."""
    params = SearchParams(query="", mode="semantic", top_k=top_k, semantic_depth=max(top_k + 1, 40))
    vector = np.asarray(embedding, dtype=np.float32)

    def plan(cursor: Any, sql_params: dict[str, Any], notices: list[str]) -> list[_Leg]:
        cursor.execute(
            "SELECT embedding_model FROM documents_chunk WHERE id = %s AND embedding IS NOT NULL",
            [chunk_id],
        )
        row = cursor.fetchone()
        if row is None:
            return []
        cursor.execute(scope_models_sql(), sql_params)
        dedicated = {r[0]: tuple(r[7]) for r in cursor.fetchall()}.get(row[0], ())
        return [_Leg(index_for(row[0], len(vector)), vector, dedicated)]

    return _execute(
        params, ParsedQuery(text=""), plan, user=user, timing={}, exclude_chunk_id=chunk_id
    )


def _is_signed_in(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    return user is not None and bool(user.is_authenticated)


def _sql_params(
    params: SearchParams,
    parsed: ParsedQuery,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    full_access: bool,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    signed_in = _is_signed_in(user)
    return {
        "full_access": full_access or (signed_in and bool(getattr(user, "is_superuser", False))),
        "user_id": user.pk if signed_in and user is not None else None,
        "collection_slugs": params.filters.collections,
        "query_text": parsed.text,
        "prune_min_terms": PRUNE_MIN_TERMS,
        "prune_postings": PRUNE_POSTINGS,
        "prune_postings_max": PRUNE_POSTINGS_MAX,
        "keyword_depth": params.keyword_depth,
        "semantic_depth": params.semantic_depth,
        "exact_max_chunks": settings.SEARCH_EXACT_MAX_CHUNKS,
        "rrf_k": float(params.rrf_k),
        "keyword_weight": float(params.keyword_weight),
        "semantic_weight": float(params.semantic_weight),
        "alpha": None if params.alpha is None else float(params.alpha),
        "default_alpha": float(settings.SEARCH_DEFAULTS["alpha"]),
        "min_score": params.min_score,
        "group_by_document": params.group_by_document,
        "limit": limit,
        "offset": offset,
        "headline_chars": settings.SEARCH_RESULT_MAX_CHARS,
    }


def _configure(
    cursor: Any, params: SearchParams, *, semantic: bool, statement_timeout_ms: int
) -> None:
    """Transaction-local settings in one statement (set_config(..., true) is SET LOCAL: it
    ends with the transaction, so a pooled connection, PgBouncer's included, is left as
    it was)."""
    values: dict[str, str] = {}
    if statement_timeout_ms > 0:
        values["statement_timeout"] = str(statement_timeout_ms)
    if semantic:
        # ef_search caps how many rows an HNSW scan can return; iterative scans keep
        # going past filtered-out rows so a filtered query still fills its depth.
        values["hnsw.ef_search"] = str(max(40, min(1000, params.semantic_depth)))
        values["hnsw.iterative_scan"] = "relaxed_order"
        values["hnsw.max_scan_tuples"] = str(settings.SEARCH_HNSW_MAX_SCAN_TUPLES)
        if params.exact:
            values["enable_indexscan"] = "off"
    if values:
        calls = ", ".join("set_config(%s, %s, true)" for _ in values)
        cursor.execute(f"SELECT {calls}", [x for item in values.items() for x in item])


def _execute(
    params: SearchParams,
    parsed: ParsedQuery,
    plan: Callable[[Any, dict[str, Any], list[str]], list[_Leg]],
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    timing: dict[str, float],
    exclude_chunk_id: int | None = None,
    full_access: bool = False,
    statement_timeout_ms: int | None = None,
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
    use_rerank = rerank_requested(params, parsed)
    limit = max(params.top_k * MMR_POOL_FACTOR, 50) if use_mmr else params.top_k
    if use_rerank:
        limit = max(limit, rerank_pool(params))
    sql_params = _sql_params(
        params,
        parsed,
        user=user,
        full_access=full_access,
        limit=limit,
        offset=0 if use_mmr or use_rerank else params.offset,
    )
    sql_params.update(filter_params)
    sql_params["group_by_document"] = params.group_by_document and not use_rerank
    if statement_timeout_ms is None:
        statement_timeout_ms = settings.SEARCH_STATEMENT_TIMEOUT_MS
    started = time.perf_counter()
    timeout_ms = statement_timeout_ms
    legs: list[_Leg] = []
    notices: list[str] = []

    # Read-only, so a replica (ragsite/db_routing.py) may serve it; run again on the
    # primary if that replica fails under it.
    # The collections' models are read in the search's own transaction, at REPEATABLE
    # READ: a model switch (documents/reembed.py) that commits in between cannot leave a
    # leg looking for vectors that are gone.
    def run(alias: str) -> tuple[list[SearchResult], int, RerankOutcome[SearchResult] | None]:
        nonlocal legs
        notices.clear()
        fresh = not connections[alias].in_atomic_block
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            if fresh:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            legs = plan(cursor, sql_params, notices)
            if use_rerank and params.group_by_document:  # every fused chunk: one per leg
                sql_params["limit"] = max(limit, rerank_pool(params, legs=len(legs)))
            sql = _statement(params, legs, sql_params, chunk_filters, with_embeddings=use_mmr)
            _configure(cursor, params, semantic=bool(legs), statement_timeout_ms=timeout_ms)
            cursor.execute(sql, sql_params)
            rows = _named_rows(cursor)
            results = [_result(row) for row in rows]
            total = int(rows[0]["total"]) if rows else 0
            results, total, outcome = reorder(
                results, total, params, parsed.text, mmr=use_mmr, rerank_=use_rerank
            )
            if params.neighbors and results:
                _attach_neighbors(cursor, results, params.neighbors)
        return results, total, outcome

    try:
        results, total, outcome = on_read_database(run)
    except OperationalError as exc:
        if isinstance(exc.__cause__, QueryCanceled):
            raise SearchTimeout(statement_timeout_ms) from exc
        raise
    timing["sql_ms"] = (time.perf_counter() - started) * 1000
    if outcome is not None:  # the rerank ran inside the read transaction: timed apart
        timing["sql_ms"] -= outcome.elapsed_ms
        timing["rerank_ms"] = outcome.elapsed_ms
    for result in results:
        result.embedding = None
    return SearchResponse(
        results=results,
        total=total,
        timing_ms=timing,
        mode=params.mode,
        query=params.query,
        anonymous=not _is_signed_in(user),
        notices=notices + (list(outcome.notices) if outcome else []),
        models=[leg.index.model for leg in legs],
        reranker=outcome.reranker if outcome else None,
    )


def _statement(
    params: SearchParams,
    legs: list[_Leg],
    sql_params: dict[str, Any],
    chunk_filters: str,
    *,
    with_embeddings: bool,
) -> str:
    """The search statement for these legs; their query vectors go into ``sql_params``."""
    for number, leg in enumerate(legs):
        sql_params[f"embedding_{number}"] = _vector_literal(leg.embedding)
    return build_search_sql(
        mode=params.mode,
        chunk_filters=chunk_filters,
        with_embeddings=with_embeddings,
        legs=[SemanticLeg(leg.index, leg.dedicated) for leg in legs],
        fusion=params.fusion,
    )


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


def _named_rows(cursor: Any) -> list[dict[str, Any]]:
    """The rows as dicts by column name (the SELECT names each column)."""
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _result(row: dict[str, Any]) -> SearchResult:
    metadata = row["metadata"]
    return SearchResult(
        chunk_id=row["chunk_id"],
        text=row["text"],
        snippet=render_snippet(row["headline"] or ""),
        document_id=row["document_id"],
        document_title=display_title(row["title"], row["source_name"]),
        source_name=row["source_name"],
        collection=row["collection"],
        ordinal=row["ordinal"],
        char_start=row["char_start"],
        char_end=row["char_end"],
        first_page=row["first_page"],
        last_page=row["last_page"],
        heading_path=list(row["heading_path"] or []),
        score=float(row["score"]),
        keyword_rank=row["kw_rank"],
        keyword_score=None if row["kw_score"] is None else float(row["kw_score"]),
        semantic_rank=row["sem_rank"],
        semantic_score=None if row["sem_score"] is None else float(row["sem_score"]),
        # A leg that did not find the chunk counts 0 in score fusion.
        keyword_norm=(_float(row["kw_norm"]) or 0.0) if row["alpha"] is not None else None,
        semantic_norm=(_float(row["sem_norm"]) or 0.0) if row["alpha"] is not None else None,
        alpha=_float(row["alpha"]),
        metadata=json.loads(metadata) if isinstance(metadata, str) else (metadata or {}),
        embedding=row["embedding"],
    )


def _attach_neighbors(cursor: Any, results: list[SearchResult], window: int) -> None:
    """The chunks just before and after each result, as context (one more statement)."""
    pairs = [(r.document_id, r.ordinal) for r in results]
    cursor.execute(
        """
        SELECT r.document_id, r.ordinal AS hit_ordinal, c.id AS chunk_id, c.ordinal, c.text,
               c.char_start, c.char_end, c.first_page, c.last_page
        FROM unnest(%s::bigint[], %s::int[]) AS r(document_id, ordinal)
        JOIN documents_chunk c ON c.document_id = r.document_id
         AND c.ordinal BETWEEN r.ordinal - %s AND r.ordinal + %s AND c.ordinal <> r.ordinal
        ORDER BY r.document_id, r.ordinal, c.ordinal
        """,
        [[p[0] for p in pairs], [p[1] for p in pairs], window, window],
    )
    by_key: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in _named_rows(cursor):
        document_id, hit_ordinal = row.pop("document_id"), row.pop("hit_ordinal")
        row["position"] = "before" if row["ordinal"] < hit_ordinal else "after"
        by_key.setdefault((document_id, hit_ordinal), []).append(row)
    for result in results:
        result.neighbors = by_key.get((result.document_id, result.ordinal), [])

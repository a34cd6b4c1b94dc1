"""What happens to the fused candidates after the SQL: rerank -> MMR ->
group_by_document -> the page (search/retrieval/_search.py calls this)."""

from __future__ import annotations

import numpy as np

from search.rerank import RerankNotConfigured, RerankOutcome, rerank, rerank_wanted
from search.retrieval._query import ParsedQuery
from search.retrieval.types import SearchParams, SearchResult

MMR_POOL_FACTOR = 4


class QueryError(ValueError):
    """A query that cannot be searched: `field` is the request field at fault and
    `message` says what is wrong with it (str() is "field: message")."""

    def __init__(self, message: str, *, field: str = "query") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def rerank_requested(params: SearchParams, parsed: ParsedQuery) -> bool:
    try:
        return rerank_wanted(params.rerank) and bool(parsed.text)  # "more like this": never
    except RerankNotConfigured as exc:
        raise QueryError("reranking is not configured", field="rerank") from exc


def rerank_pool(params: SearchParams, *, legs: int = 1) -> int:
    """How many fused candidates the SQL returns for a reranked search."""
    if params.group_by_document:
        # Documents are grouped after the rerank (a document's best chunk is the
        # reranker's pick), so every fused chunk is fetched and grouped here: the
        # keyword leg's and each model's semantic leg's.
        return params.keyword_depth + params.semantic_depth * max(1, legs)
    return max(params.rerank_depth, params.offset + params.top_k)


def reorder(
    results: list[SearchResult],
    total: int,
    params: SearchParams,
    query: str,
    *,
    mmr: bool,
    rerank_: bool,
) -> tuple[list[SearchResult], int, RerankOutcome[SearchResult] | None]:
    """rerank -> MMR -> group_by_document -> the page, over the candidates the SQL
    fetched (without either, the SQL ordered, grouped and paged them itself)."""
    outcome = rerank(query, results, depth=params.rerank_depth) if rerank_ else None
    if outcome is not None:
        results = outcome.results
    if mmr:
        reranked = outcome is not None and outcome.reranker is not None
        results = _mmr(results, lambda_=params.mmr_lambda or 0.5, by_position=reranked)
    if rerank_ and params.group_by_document:
        best: dict[int, SearchResult] = {}
        for result in results:  # each document's first chunk in the final order
            best.setdefault(result.document_id, result)
        results, total = list(best.values()), len(best)
    if mmr or rerank_:
        results = results[params.offset : params.offset + params.top_k]
    return results, total, outcome


def _mmr(
    results: list[SearchResult],
    *,
    lambda_: float,
    by_position: bool = False,
) -> list[SearchResult]:
    """Maximal marginal relevance: trade relevance for novelty among the candidates.

    Relevance is the candidate's normalised fused score (so it works in every mode);
    novelty is its cosine distance to what was already picked.
    """
    if len(results) <= 1:
        return results
    scores = np.array([r.score for r in results], dtype=np.float64)
    if by_position:  # reranked: the order is the reranker's, which the fused scores are not
        scores = -np.arange(len(results), dtype=np.float64)
    span = scores.max() - scores.min()
    relevance = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    picked: list[int] = []
    remaining = list(range(len(results)))
    similarity = _similarities(results)
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


def _similarities(results: list[SearchResult]) -> np.ndarray:
    """Cosine similarity between candidates of the same model (same dimensions); 0 across
    models, whose vectors cannot be compared."""
    size = len(results)
    similarity = np.zeros((size, size))
    by_dims: dict[int, list[int]] = {}
    for i, result in enumerate(results):
        by_dims.setdefault(len(result.embedding), []).append(i)
    for members in by_dims.values():
        vectors = np.array([np.asarray(results[i].embedding, dtype=np.float32) for i in members])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        similarity[np.ix_(members, members)] = vectors @ vectors.T
    return similarity

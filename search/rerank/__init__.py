"""Reranking: a cross-encoder (local, or behind a rerank server) reads the query with each
of the first `depth` fused candidates and orders them by its score.

    outcome = rerank(query, results, depth=50)

Off unless RERANK_BACKEND names a backend ("cross-encoder" or "http") and the request (or
RERANK_DEFAULT) asks for it. A reranker that fails never fails the search: the fused
order comes back with a notice saying why.

This package knows nothing of the search (it takes anything with `text` and the two
rerank fields), so search.retrieval can call it without an import cycle.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from django.conf import settings

from search.rerank._base import Reranker, RerankError

logger = logging.getLogger(__name__)

BACKENDS = ("cross-encoder", "http")
# A 512-token cross-encoder reads about 2,000 characters; longer texts are cut here so a
# huge legacy chunk cannot make the request (or the tokenizer's work) huge.
MAX_TEXT_CHARS = 4000


class Rerankable(Protocol):
    text: str
    rerank_score: float | None
    rank_before_rerank: int | None


R = TypeVar("R", bound=Rerankable)


class RerankNotConfigured(ValueError):
    """Reranking was asked for but RERANK_BACKEND names none."""


@dataclass
class RerankOutcome(Generic[R]):
    results: list[R]  # the reranked head, then the rest in their fused order
    reranker: str | None = None  # who ordered them; None when reranking was skipped
    notices: list[str] = field(default_factory=list)
    elapsed_ms: float = 0.0


def rerank_configured() -> bool:
    return settings.RERANK_BACKEND in BACKENDS


def rerank_wanted(requested: bool | None) -> bool:
    """Whether a search reranks: as asked, else RERANK_DEFAULT. Asking without a
    configured backend is the caller's error (RerankNotConfigured)."""
    if requested is None:
        return bool(settings.RERANK_DEFAULT) and rerank_configured()
    if requested and not rerank_configured():
        raise RerankNotConfigured("reranking is not configured (RERANK_BACKEND is empty)")
    return requested


def reranker_name() -> str | None:
    """The configured reranker's name, without loading it; None when there is none."""
    if settings.RERANK_BACKEND == "http":
        model, url = settings.RERANK_MODEL, settings.RERANK_BASE_URL.rstrip("/")
        return f"http:{model or url}"
    if settings.RERANK_BACKEND == "cross-encoder":
        from search.rerank._local import onnx_file

        folder = Path(settings.RERANK_MODEL_PATH)
        onnx = " (onnx)" if settings.RERANK_MODEL_PATH and onnx_file(folder) else ""
        return f"cross-encoder:{folder.name}{onnx}"
    return None


def _reranker() -> Reranker:
    backend = settings.RERANK_BACKEND
    if backend == "http":
        from search.rerank._http import http_reranker

        return http_reranker()
    if backend == "cross-encoder":
        from search.rerank._local import local_reranker

        return local_reranker(settings.RERANK_MODEL_PATH)
    raise RerankError(f"RERANK_BACKEND {backend!r} is not one of {', '.join(BACKENDS)}")


def rerank(query: str, results: list[R], *, depth: int) -> RerankOutcome[R]:
    """The first `depth` results ordered by the reranker's score (ties keep their fused
    order), each given its `rerank_score` and `rank_before_rerank`; the rest follow
    unchanged. On any failure of the reranker: the results as given, with a notice."""
    head, tail = results[:depth], results[depth:]
    started = time.perf_counter()
    if not head:
        return RerankOutcome(results, reranker=reranker_name())
    try:
        reranker = _reranker()
        scores = reranker.score(query, [r.text[:MAX_TEXT_CHARS] for r in head])
        if len(scores) != len(head):
            raise RerankError(f"the reranker gave {len(scores)} scores for {len(head)} texts")
    except RerankError as exc:
        logger.warning("reranking skipped: %s", exc)
        return _skipped(results, str(exc), started)
    except Exception as exc:  # a model's own failure must not fail the search
        logger.exception("the reranker failed")
        return _skipped(results, f"the reranker failed ({type(exc).__name__}: {exc})", started)
    for rank, (result, score) in enumerate(zip(head, scores, strict=True), start=1):
        result.rank_before_rerank = rank
        result.rerank_score = score if math.isfinite(score) else -math.inf
    ordered = sorted(head, key=lambda r: -(r.rerank_score or 0.0))  # stable: ties keep order
    elapsed = (time.perf_counter() - started) * 1000
    return RerankOutcome([*ordered, *tail], reranker=reranker.name, elapsed_ms=elapsed)


def _skipped(results: list[R], reason: str, started: float) -> RerankOutcome[R]:
    return RerankOutcome(
        results,
        notices=[f"reranking skipped: {reason}"],
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )


__all__ = [
    "BACKENDS",
    "RerankError",
    "RerankNotConfigured",
    "RerankOutcome",
    "Rerankable",
    "rerank",
    "rerank_configured",
    "rerank_wanted",
    "reranker_name",
]

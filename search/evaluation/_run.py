"""Ingest a corpus through the real pipeline and run queries through the real search."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from documents.chunk_text import ChunkingConfig, chunking_settings_fingerprint
from documents.models import Collection, Document
from documents.pipeline import documents_process_pending
from documents.services import collection_create, document_upload
from search.evaluation._data import BeirDataset, DatasetError
from search.evaluation._metrics import compute_metrics
from search.retrieval import Filters, SearchParams, search

# What is called with each step done (a tqdm bar's update, say); its result is ignored.
Progress = Callable[[int], object] | None
DOCUMENT_DEPTH = 100  # rank this many documents per query (Recall@100)
# A document's rank is its best chunk's; the legs fetch this many chunks so that about
# DOCUMENT_DEPTH distinct documents remain after grouping.
LEG_DEPTH = 300


@dataclass(frozen=True)
class Variant:
    """A named search configuration to evaluate."""

    name: str
    mode: str = "hybrid"
    options: dict[str, Any] = field(default_factory=dict)


def default_variants() -> list[Variant]:
    return [
        Variant("keyword", "keyword"),
        Variant("semantic", "semantic"),
        Variant("semantic_exact", "semantic", {"exact": True}),
        Variant("hybrid", "hybrid"),
        # Both fusions, whichever SEARCH_FUSION makes the default.
        Variant("hybrid_rrf", "hybrid", {"fusion": "rrf"}),
        Variant("hybrid_score", "hybrid", {"fusion": "score"}),
        Variant("hybrid_mmr", "hybrid", {"mmr_lambda": 0.7}),
    ]


def rerank_variants(depth: int | None = None) -> list[Variant]:
    """Hybrid and semantic again, reranked (the first `depth` chunks; default
    RERANK_DEPTH): to compare with their fused order."""
    options: dict[str, Any] = {"rerank": True}
    if depth:
        options["rerank_depth"] = depth
    return [
        Variant("hybrid_rerank", "hybrid", options),
        Variant("semantic_rerank", "semantic", options),
    ]


class RerankFailed(RuntimeError):
    """A reranked variant whose reranker did not run: its figures would be the fused
    order's under the reranker's name."""


def corpus_collection_slug(dataset_name: str, chunking: ChunkingConfig | None = None) -> str:
    """One collection per dataset and chunking settings (the pipeline's own fingerprint
    of the model, chunk size, overlap and header): a change re-ingests."""
    digest = chunking_settings_fingerprint(chunking)[:8]
    base = "".join(ch if ch.isalnum() else "-" for ch in dataset_name.lower()).strip("-")
    return f"beir-{base[:60]}-{digest}"


def ingest_corpus(
    dataset: BeirDataset,
    *,
    progress: Progress = None,
    context_header: bool | None = None,
    chunking: ChunkingConfig | None = None,
) -> Collection:
    """Ingest the corpus into its own collection, or reuse it when already complete.

    ``chunking`` (default: the settings') and ``context_header`` (overrides its header)
    shape this ingestion only (bench/chunk_study.py varies the size); the collection's
    slug names the settings, so each setting gets (and reuses) its own.
    """
    chunking = chunking or ChunkingConfig.from_settings()
    if context_header is not None:
        chunking = replace(chunking, context_header=context_header)
    slug = corpus_collection_slug(dataset.name, chunking)
    collection = Collection.objects.filter(slug=slug).first() or collection_create(
        owner=None,
        name=f"{dataset.name} (evaluation)",
        slug=slug,
        description="Created by manage.py evaluate; reused while the model and chunk "
        "settings stay the same.",
    )
    known = set(
        Document.objects.filter(collection=collection).values_list("metadata__id", flat=True)
    )
    for row in dataset.corpus():
        corpus_id = str(row["_id"])
        if corpus_id in known:
            continue
        title = str(row.get("title") or "").strip()
        body = str(row.get("text") or "").strip()
        # BM25 on BEIR indexes title + text; as a Markdown heading the title also
        # becomes the chunks' heading path (and contextual header).
        text = f"# {title}\n\n{body}" if title else body
        if not text:
            continue
        document_upload(
            collection=collection,
            user=None,
            text=text,
            title=title,
            metadata={"id": corpus_id},
            source_name=f"{corpus_id}.md",
            enqueue=False,
        )
        known.add(corpus_id)
    documents_process_pending(collection_id=collection.pk, progress=progress, chunking=chunking)
    return collection


def resolve_qrels(
    collection: Collection, qrels: dict[str, dict[str, int]]
) -> dict[str, dict[str, int]]:
    """Map qrels corpus-ids (a document's metadata `id` or its source name) to doc ids."""
    by_key: dict[str, int] = {}
    for pk, meta_id, source in Document.objects.filter(collection=collection).values_list(
        "pk", "metadata__id", "source_name"
    ):
        by_key.setdefault(source, pk)
        if meta_id is not None:
            by_key[str(meta_id)] = pk
    resolved: dict[str, dict[str, int]] = {}
    unknown: set[str] = set()
    for qid, judged in qrels.items():
        for corpus_id, grade in judged.items():
            if corpus_id not in by_key:
                unknown.add(corpus_id)
                continue
            resolved.setdefault(qid, {})[str(by_key[corpus_id])] = grade
    if unknown:
        example = sorted(unknown)[0]
        raise DatasetError(
            f"qrels name {len(unknown)} corpus id(s) that match no document of collection "
            f"{collection.slug!r} (by metadata id or source name), e.g. {example!r}"
        )
    return resolved


def run_variant(
    variant: Variant,
    *,
    collection: Collection,
    queries: dict[str, str],
    base: dict[str, Any] | None = None,
    progress: Progress = None,
) -> tuple[dict[str, dict[str, float]], list[float], list[float]]:
    """The run (query -> document id -> score) and per-query latencies (total, SQL)."""
    options = {
        "keyword_depth": LEG_DEPTH,
        "semantic_depth": LEG_DEPTH,
        "rerank": False,  # only the reranked variants rerank, whatever RERANK_DEFAULT says
        **(base or {}),
        **variant.options,
    }
    params = SearchParams(
        query="",
        mode=variant.mode,  # type: ignore[arg-type]
        top_k=DOCUMENT_DEPTH,
        group_by_document=True,
        filters=Filters(collections=[collection.slug]),
        **options,
    )
    run: dict[str, dict[str, float]] = {}
    totals: list[float] = []
    sqls: list[float] = []
    for qid, text in queries.items():
        started = time.perf_counter()
        # No statement_timeout: the evaluation measures, it does not serve requests.
        response = search(
            replace(params, query=text), user=None, full_access=True, statement_timeout_ms=0
        )
        totals.append((time.perf_counter() - started) * 1000)
        if params.rerank and response.reranker is None:
            raise RerankFailed(f"{variant.name}: {'; '.join(response.notices)}")
        sqls.append(response.timing_ms.get("sql_ms", 0.0))
        count = len(response.results)
        # Scores for trec_eval are rank-based so ties can never reorder the list.
        run[qid] = {str(r.document_id): float(count - i) for i, r in enumerate(response.results)}
        if progress is not None:
            progress(1)
    return run, totals, sqls


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def evaluate(
    *,
    collection: Collection,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    variants: list[Variant],
    base: dict[str, Any] | None = None,
    progress: Progress = None,
) -> dict[str, dict[str, Any]]:
    """Metrics and latency per variant, shaped for `--output`."""
    report: dict[str, dict[str, Any]] = {}
    judged = {qid: text for qid, text in queries.items() if qid in qrels}
    for variant in variants:
        run, totals, sqls = run_variant(
            variant, collection=collection, queries=judged, base=base, progress=progress
        )
        metrics = compute_metrics(run, qrels)
        report[variant.name] = {
            **{key: round(value, 4) for key, value in metrics.items()},
            "latency_ms": {
                "p50": round(statistics.median(totals), 2) if totals else 0.0,
                "p95": round(_percentile(totals, 0.95), 2),
                "sql_p50": round(statistics.median(sqls), 2) if sqls else 0.0,
                "sql_p95": round(_percentile(sqls, 0.95), 2),
            },
            "queries": len(judged),
        }
    return report

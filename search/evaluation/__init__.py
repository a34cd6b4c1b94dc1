"""Retrieval evaluation on BEIR-format datasets or a user's own collection.

dataset = load_beir(Path("../shared/datasets/scifact"), split="test")
collection = ingest_corpus(dataset, progress=...)
report = evaluate(collection=collection, queries=dataset.queries, qrels=dataset.qrels,
                  variants=default_variants())

Tuning (train split only): one `SweepTarget` per contextual-header setting, each from
`ingest_corpus(dataset, context_header=...)`, then `sweep(targets=..., grid=SWEEP_GRID)`.
"""

from search.evaluation._data import BeirDataset, DatasetError, load_beir, load_qrels, load_queries
from search.evaluation._metrics import compute_metrics
from search.evaluation._run import (
    RerankFailed,
    Variant,
    corpus_collection_slug,
    default_variants,
    evaluate,
    ingest_corpus,
    rerank_variants,
    resolve_qrels,
    run_variant,
)
from search.evaluation._sweep import (
    ALPHA,
    HEADER,
    SWEEP_GRID,
    SweepTarget,
    best_alpha,
    header_values,
    sweep,
    sweep_size,
)

__all__ = [
    "ALPHA",
    "HEADER",
    "SWEEP_GRID",
    "BeirDataset",
    "DatasetError",
    "RerankFailed",
    "SweepTarget",
    "Variant",
    "best_alpha",
    "compute_metrics",
    "corpus_collection_slug",
    "default_variants",
    "evaluate",
    "header_values",
    "ingest_corpus",
    "load_beir",
    "load_qrels",
    "load_queries",
    "rerank_variants",
    "resolve_qrels",
    "run_variant",
    "sweep",
    "sweep_size",
]

"""Retrieval evaluation on BEIR-format datasets or a user's own collection.

dataset = load_beir(Path("../shared/datasets/scifact"), split="test")
collection = ingest_corpus(dataset, progress=...)
report = evaluate(collection=collection, queries=dataset.queries, qrels=dataset.qrels,
                  variants=default_variants())
"""

from search.evaluation._data import BeirDataset, DatasetError, load_beir, load_qrels, load_queries
from search.evaluation._metrics import compute_metrics
from search.evaluation._run import (
    Variant,
    corpus_collection_slug,
    default_variants,
    evaluate,
    ingest_corpus,
    resolve_qrels,
    run_variant,
)

__all__ = [
    "BeirDataset",
    "DatasetError",
    "Variant",
    "compute_metrics",
    "corpus_collection_slug",
    "default_variants",
    "evaluate",
    "ingest_corpus",
    "load_beir",
    "load_qrels",
    "load_queries",
    "resolve_qrels",
    "run_variant",
]

"""Sweep BM25's k1 and b on a BEIR train split (keyword leg only).

    .venv/bin/python bench/bm25_params.py --dataset ../shared/datasets/scifact --split train

Rebuilds the collection's BM25 weights for each setting (the chunks and embeddings stay),
then restores the shipped values. Uses the collection `manage.py evaluate` ingested.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from django.db import transaction  # noqa: E402

from documents import keyword_index  # noqa: E402
from search.evaluation import (  # noqa: E402
    Variant,
    evaluate,
    ingest_corpus,
    load_beir,
    resolve_qrels,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    if args.split == "test":
        sys.exit("tune on train, never on test")
    dataset = load_beir(args.dataset, split=args.split)
    collection = ingest_corpus(dataset)
    qrels = resolve_qrels(collection, dataset.qrels)
    shipped = (keyword_index.BM25_K1, keyword_index.BM25_B)
    try:
        for k1 in (0.6, 0.9, 1.2, 1.5):
            for b in (0.3, 0.4, 0.6, 0.75):
                keyword_index.BM25_K1, keyword_index.BM25_B = k1, b
                with transaction.atomic():
                    keyword_index.keyword_index_rebuild_collection(collection_id=collection.pk)
                report = evaluate(
                    collection=collection,
                    queries=dataset.queries,
                    qrels=qrels,
                    variants=[Variant("keyword", "keyword")],
                )
                print(f"k1={k1} b={b} nDCG@10={report['keyword']['ndcg@10']:.4f}", flush=True)
    finally:
        keyword_index.BM25_K1, keyword_index.BM25_B = shipped
        with transaction.atomic():
            keyword_index.keyword_index_rebuild_collection(collection_id=collection.pk)


if __name__ == "__main__":
    main()

"""The judging pool: each mode's top pages per query that judgments.tsv does not grade yet.

    .venv/bin/python bench/data/pydoc/pool.py [--collection pydoc] [--depth 10] > pool.tsv

Runs every query of queries.jsonl through the real search (keyword, semantic, hybrid; as
`manage.py evaluate` does, one result per page) on the ingested collection, and prints
`query-id, corpus-id, modes that ranked it (mode:rank), query text` for each pooled page
not judged yet. Grade those by reading the page (2 answers, 1 helps, 0 neither) and add
them to judgments.tsv with source `pool`; then run split.py.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from documents.models import Collection, Document  # noqa: E402
from search.evaluation import Variant, load_queries, run_variant  # noqa: E402

MODES = ("keyword", "semantic", "hybrid")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", default="pydoc")
    parser.add_argument("--depth", type=int, default=10)
    args = parser.parse_args(argv)
    collection = Collection.objects.filter(slug=args.collection).first()
    if collection is None:
        raise SystemExit(f"no collection {args.collection!r}: run ingest.sh first")
    names = dict(Document.objects.filter(collection=collection).values_list("pk", "source_name"))
    queries = load_queries(HERE / "queries.jsonl")
    with (HERE / "judgments.tsv").open(encoding="utf-8", newline="") as handle:
        judged = {(row[0], row[1]) for row in list(csv.reader(handle, delimiter="\t"))[1:]}
    pool: dict[tuple[str, str], list[str]] = {}
    for mode in MODES:
        run, _, _ = run_variant(Variant(mode, mode), collection=collection, queries=queries)
        for qid, ranked in run.items():
            top = sorted(ranked, key=lambda doc: -ranked[doc])[: args.depth]
            for rank, doc in enumerate(top, start=1):
                pool.setdefault((qid, names[int(doc)]), []).append(f"{mode}:{rank}")
    writer = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    unjudged = sorted(pair for pair in pool if pair not in judged)
    for qid, page in unjudged:
        writer.writerow([qid, page, " ".join(pool[qid, page]), queries[qid]])
    print(
        f"{len(pool)} pooled pairs at depth {args.depth}, {len(unjudged)} not judged yet",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

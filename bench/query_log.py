"""What the query log costs a search, and how long a /metrics scrape takes.

    .venv/bin/python bench/query_log.py [--dataset ../shared/datasets/scifact]
        [--docs 2000] [--queries 1000] [--scrape-rows 100000] [--output FILE]

In a database of its own (`<product>_querylog`, bench/benchdb.py): SciFact's first
--docs documents are ingested through the real pipeline into a public collection, then
--queries train queries are sent through the search API (DRF client, in this process:
middleware, view, search, serializer, query log and metrics) twice each, once with
QUERY_LOG on and once off, the order alternating pair by pair so drift hurts both alike.
Reported: p50/p95 with the log on and off, and the median of the paired differences
(on - off), which the issue wants under 1 ms. The row is written by the log's background
writer (insights/log_writer.py, every QUERY_LOG_FLUSH_SECONDS), as in production, so the
difference is what a request pays: the id reservation, the queueing and the metrics;
`rows_logged` checks every logged search was written. Then --scrape-rows query log rows are
bulk-inserted and `GET /metrics` is timed (median of 20 scrapes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

from bench.benchdb import database_create, use_database  # noqa: E402

DATABASE = use_database("querylog")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from documents.models import Collection  # noqa: E402
from documents.pipeline import documents_process  # noqa: E402
from documents.services import document_upload  # noqa: E402
from insights import log_writer  # noqa: E402
from insights.models import QueryLog  # noqa: E402

TOKEN = "bench-metrics-token"


def corpus_load(dataset: Path, docs: int) -> int:
    collection = Collection.objects.create(name="Bench", slug="bench-querylog", is_public=True)
    ids = []
    with (dataset / "corpus.jsonl").open() as corpus:
        for line in corpus:
            row = json.loads(line)
            text = f"# {row['title'].strip()}\n\n{row['text'].strip()}"
            result = document_upload(
                collection=collection,
                user=None,
                file=ContentFile(text.encode(), name=f"{row['_id']}.md"),
                enqueue=False,
            )
            ids.append(result.document.pk)
            if len(ids) >= docs:
                break
    for start in range(0, len(ids), 64):
        documents_process(document_ids=ids[start : start + 64])
    return len(ids)


def queries_load(dataset: Path, count: int) -> list[str]:
    texts = []
    with (dataset / "queries_train.jsonl").open() as queries:
        for line in queries:
            texts.append(json.loads(line)["text"])
    return [texts[i % len(texts)] for i in range(count)]


def timed_search(client: APIClient, query: str, *, log: bool) -> float:
    settings.QUERY_LOG = log  # this process only: the benchmark's own switch
    started = time.perf_counter()
    response = client.post("/api/v1/search/", {"query": query}, format="json")
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        sys.exit(f"search failed: {response.status_code} {response.content[:200]!r}")
    return elapsed


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def search_cost(queries: list[str]) -> dict[str, Any]:
    client = APIClient(SERVER_NAME="localhost")
    for query in queries[:20]:  # warm-up: model, caches, connections
        timed_search(client, query, log=False)
    on: list[float] = []
    off: list[float] = []
    for index, query in enumerate(queries):
        # The query's embedding is cached first (untimed), so both calls of the pair find
        # it cached: otherwise the pair's first call pays for it and the differences split
        # into two humps whose median means nothing. Which goes first alternates.
        timed_search(client, query, log=False)
        order = (True, False) if index % 2 else (False, True)
        for log in order:
            (on if log else off).append(timed_search(client, query, log=log))
    differences = [a - b for a, b in zip(on, off, strict=True)]
    log_writer.flush()  # what the writer still holds
    return {
        "queries": len(queries),
        "rows_logged": QueryLog.objects.count(),
        "log_on_ms": {"p50": percentile(on, 0.5), "p95": percentile(on, 0.95)},
        "log_off_ms": {"p50": percentile(off, 0.5), "p95": percentile(off, 0.95)},
        "median_paired_difference_ms": statistics.median(differences),
    }


def scrape_time(rows: int) -> dict[str, Any]:
    existing = QueryLog.objects.count()
    batch = [
        QueryLog(
            endpoint="search", mode="hybrid", query=f"q {i}", total_ms=10.0, result_count=i % 5
        )
        for i in range(max(0, rows - existing))
    ]
    QueryLog.objects.bulk_create(batch, batch_size=5000)
    client = APIClient(SERVER_NAME="localhost")
    times = []
    settings.METRICS_TOKEN = TOKEN
    for _ in range(20):
        started = time.perf_counter()
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            sys.exit(f"/metrics failed: {response.status_code}")
    return {"log_rows": QueryLog.objects.count(), "scrape_ms_median": statistics.median(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--scrape-rows", type=int, default=100_000)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    database_create(DATABASE, replace=True)
    call_command("migrate", verbosity=0)
    settings.API_THROTTLE_ANON = ""  # a benchmark, not a client
    documents = corpus_load(args.dataset, args.docs)
    result = {
        "database": DATABASE,
        "documents": documents,
        "search": search_cost(queries_load(args.dataset, args.queries)),
        "metrics": scrape_time(args.scrape_rows),
        "cpus": os.cpu_count(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()

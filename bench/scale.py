"""Search latency and HNSW recall on synthetic collections of 10k, 100k, 1M chunks.

    .venv/bin/python bench/scale.py --sizes 10000,100000 [--queries 100] [--chart PATH]

Needs the SciFact collection that `manage.py evaluate --dataset ../shared/datasets/scifact`
ingests: the scale sets are built from its real chunks so that term statistics stay
realistic. Each synthetic chunk starts from a real chunk, swaps in a sentence from another
chunk, and resamples about a fifth of its words from the corpus' own unigram
distribution (rare terms stay rare; no abstract is simply repeated). Its vector is the
real chunk's embedding plus Gaussian noise, normalised. Rows are loaded with COPY into
the real tables (indexes included) and the BM25 weights are built by the same code as
ingestion. Queries are SciFact's test claims; latency is measured through the same
search service the API uses, with and without the query embedding.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from documents.embedding import active_model_name, embed_texts  # noqa: E402
from documents.keyword_index import keyword_index_rebuild_collection  # noqa: E402
from documents.models import Chunk, Collection, Document  # noqa: E402
from documents.services import collection_create  # noqa: E402
from search.evaluation import corpus_collection_slug, load_queries  # noqa: E402
from search.retrieval import Filters, SearchParams, search  # noqa: E402

CHUNKS_PER_DOCUMENT = 10
NOISE = 0.02
WORD = re.compile(r"\S+")
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(size: int, source: Collection, rng: random.Random) -> Collection:
    slug = f"scale-{size}"
    existing = Collection.objects.filter(slug=slug).first()
    if existing and Chunk.objects.filter(collection=existing).count() == size:
        print(f"{slug}: reusing {size} chunks", flush=True)
        return existing
    if existing:
        existing.delete()
    collection = collection_create(owner=None, name=f"Scale set {size}", slug=slug)
    rows = list(Chunk.objects.filter(collection=source).values_list("text", "embedding"))
    texts = [text for text, _ in rows]
    vectors = np.array([vector for _, vector in rows], dtype=np.float32)
    sentences = [s for text in texts for s in SENTENCE.split(text) if len(s) > 20]
    unigram = Counter(word for text in texts for word in WORD.findall(text))
    words, weights = zip(*unigram.items(), strict=True)
    cumulative = np.cumsum(np.array(weights, dtype=np.float64))
    cumulative /= cumulative[-1]
    nprng = np.random.default_rng(rng.randrange(2**32))
    started = time.perf_counter()
    documents = []
    for d in range(0, size, CHUNKS_PER_DOCUMENT):
        documents.append(
            Document(
                collection=collection,
                title=f"Synthetic {d // CHUNKS_PER_DOCUMENT}",
                original="scale/synthetic.txt",
                source_name="synthetic.txt",
                mime_type="text/plain",
                sha256=f"{size}-{d}",
                status="ready",
                chunk_count=CHUNKS_PER_DOCUMENT,
                embedding_model=active_model_name(),
            )
        )
    Document.objects.bulk_create(documents, batch_size=5000)
    document_ids = list(
        Document.objects.filter(collection=collection).order_by("id").values_list("id", flat=True)
    )
    model = active_model_name()
    batch = 20000
    for offset in range(0, size, batch):
        buffer = io.StringIO()
        count = min(batch, size - offset)
        picks = nprng.integers(0, len(texts), count)
        noise = nprng.normal(0, NOISE, size=(count, vectors.shape[1])).astype(np.float32)
        new_vectors = vectors[picks] + noise
        new_vectors /= np.linalg.norm(new_vectors, axis=1, keepdims=True)
        resample = np.searchsorted(cumulative, nprng.random(count * 400))
        cursor_word = 0
        for j in range(count):
            index = offset + j
            parts = SENTENCE.split(texts[picks[j]])
            parts[rng.randrange(len(parts))] = sentences[rng.randrange(len(sentences))]
            tokens = WORD.findall(" ".join(parts))
            for k in range(len(tokens)):
                if rng.random() < 0.2:
                    tokens[k] = words[resample[cursor_word % len(resample)]]
                    cursor_word += 1
            text = " ".join(tokens).replace("\\", " ").replace("\t", " ").replace("\n", " ")
            vector = "[" + ",".join(f"{x:.6f}" for x in new_vectors[j]) + "]"
            buffer.write(
                f"{document_ids[index // CHUNKS_PER_DOCUMENT]}\t{collection.pk}\t"
                f"{index % CHUNKS_PER_DOCUMENT}\t{text}\t0\t{len(text)}\t{{}}\t0\t{vector}\t"
                f"{model}\tenglish\t\t0\tnow\n"
            )
        buffer.seek(0)
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY documents_chunk (document_id, collection_id, ordinal, text, char_start, "
                "char_end, heading_path, token_count, embedding, embedding_model, search_config, "
                "context, keyword_length, created) FROM STDIN"
            ) as copy,
        ):
            copy.write(buffer.getvalue())
        print(
            f"{slug}: {offset + count} chunks loaded ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    with transaction.atomic():
        keyword_index_rebuild_collection(collection_id=collection.pk)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_chunk")
        cursor.execute("ANALYZE documents_termdocumentfrequency")
    print(f"{slug}: built in {time.perf_counter() - started:.0f} s", flush=True)
    return collection


def hnsw_recall(collection: Collection, embeddings: np.ndarray) -> float:
    """Recall@10 by distance: a result counts if it lies within the exact 10th distance."""
    hits = 0
    sql = (
        "SELECT embedding <=> %s::vector FROM documents_chunk "
        "WHERE collection_id = %s AND embedding_model = %s "
        "ORDER BY embedding <=> %s::vector LIMIT 10"
    )
    for vector in embeddings:
        literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
        params = [literal, collection.pk, active_model_name(), literal]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('enable_indexscan', 'off', true)")
            cursor.execute(sql, params)
            exact = [row[0] for row in cursor.fetchall()]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', '100', true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true)"
            )
            cursor.execute(sql, params)
            approx = [row[0] for row in cursor.fetchall()]
        hits += sum(1 for d in approx if d <= exact[-1] + 1e-6)
    return hits / (10 * len(embeddings))


def measure(collection: Collection, queries: list[str]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for mode in ("keyword", "semantic", "hybrid"):
        for query in queries[:5]:  # warm caches and the model
            search(
                SearchParams(
                    query=query, mode=mode, filters=Filters(collections=[collection.slug])
                ),
                user=None,
                full_access=True,
            )
        totals, sqls = [], []
        for query in queries:
            started = time.perf_counter()
            response = search(
                SearchParams(
                    query=query, mode=mode, filters=Filters(collections=[collection.slug])
                ),
                user=None,
                full_access=True,
            )
            totals.append((time.perf_counter() - started) * 1000)
            sqls.append(response.timing_ms["sql_ms"])
        results[mode] = {
            "p50_ms": round(statistics.median(totals), 1),
            "p95_ms": round(percentile(totals, 0.95), 1),
            "sql_p50_ms": round(statistics.median(sqls), 1),
            "sql_p95_ms": round(percentile(sqls, 0.95), 1),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--output", type=Path, default=Path("bench/results/scale.json"))
    parser.add_argument("--chart", type=Path, default=Path("bench/results/scale.png"))
    args = parser.parse_args()
    source = Collection.objects.filter(
        slug=corpus_collection_slug(args.dataset.resolve().name)
    ).first()
    if source is None:
        sys.exit("run `manage.py evaluate --dataset ../shared/datasets/scifact` first")
    queries = list(load_queries(args.dataset / "queries_test.jsonl").values())[: args.queries]
    embeddings = embed_texts(queries)
    rng = random.Random(42)
    report: dict[str, dict] = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        collection = build(size, source, rng)
        latency = measure(collection, queries)
        recall = hnsw_recall(collection, embeddings[: min(50, len(queries))])
        report[str(size)] = {"latency": latency, "hnsw_recall@10": round(recall, 4)}
        print(json.dumps({size: report[str(size)]}), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(s) for s in report]
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in ("keyword", "semantic", "hybrid"):
        ax.plot(
            sizes,
            [report[str(s)]["latency"][mode]["sql_p95_ms"] for s in sizes],
            marker="o",
            label=f"{mode} p95 (SQL)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("chunks")
    ax.set_ylabel("ms")
    ax.set_title("Search latency against corpus size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.chart, dpi=110)
    print(f"wrote {args.output} and {args.chart}")


if __name__ == "__main__":
    main()

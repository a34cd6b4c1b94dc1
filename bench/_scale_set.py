"""One scale set: build (or reuse) N synthetic chunks in their own database, then measure.

    .venv/bin/python bench/_scale_set.py --size 100000 --result /tmp/scale-100000.json

Run by bench/scale.py, one process per size (see its docstring for the method). The
database is `<product database>_scale_<N>` on the same server: its table and indexes
hold that set alone, and nothing here touches the product's data, which is only read
(the SciFact evaluation collection that the synthetic chunks are made from).

Bulk path, phase by phase (each timed and printed):
1. migrate: a fresh database, migrated; the definitions of the chunk table's costly
   indexes (every one not backing a constraint: HNSW, GIN, btrees) are read back from
   PostgreSQL, so they are exactly what the migrations create, and dropped.
2. generate: synthetic chunks in batches, COPY (binary) into a temporary staging table.
3. load: each batch goes from staging into the chunk table with its tsvector, length and
   BM25 weights computed in the INSERT (the SQL the pipeline uses), then the collection's
   keyword statistics are updated by the pipeline's own `keyword_add_documents`, so they
   are exactly what ingestion would have left (weights rebuilt if the average length
   drifted, as the pipeline does).
4. index: the dropped indexes are recreated from their captured definitions, once,
   with a large maintenance_work_mem and parallel maintenance workers.
5. analyze: VACUUM (ANALYZE) of the loaded tables, so autovacuum does not start in the
   middle of the measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", type=int, required=True, help="chunks in the set")
    parser.add_argument("--result", type=Path, required=True, help="write the JSON here")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20_000, help="chunks per COPY/INSERT")
    parser.add_argument("--maintenance-work-mem", default="4GB")
    parser.add_argument(
        "--parallel-workers",
        type=int,
        # The leader builds too, so one worker per core beyond the first.
        default=max(1, (os.cpu_count() or 2) - 1),
        help="max_parallel_maintenance_workers for the index builds",
    )
    parser.add_argument("--rebuild", action="store_true", help="rebuild even if complete")
    parser.add_argument("--drop", action="store_true", help="drop the database when done")
    return parser.parse_args()


ARGS = _arguments()  # the size names the database, which must be chosen before setup

from bench.benchdb import (  # noqa: E402
    PRODUCT,
    database_create,
    database_drop,
    database_exists,
    use_database,
)

DATABASE = use_database(f"scale_{ARGS.size}")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.migrations.executor import MigrationExecutor  # noqa: E402
from pgvector.psycopg.vector import register_vector_info  # noqa: E402
from psycopg.types import TypeInfo  # noqa: E402

from documents.embedding import active_model_name, embed_texts  # noqa: E402
from documents.keyword_index import (  # noqa: E402
    bm25_params,
    bm25_sql,
    collections_needing_rebuild,
    keyword_add_documents,
    keyword_index_rebuild_collection,
    keyword_length_sql,
    tsvector_sql,
)
from documents.models import Chunk, Collection, Document  # noqa: E402
from documents.services import collection_create  # noqa: E402
from search.evaluation import corpus_collection_slug, load_queries  # noqa: E402
from search.retrieval import Filters, SearchParams, search  # noqa: E402

CHUNKS_PER_DOCUMENT = 10
NOISE = 0.02
DROPOUT = 0.2  # share of each chunk's words resampled from the unigram distribution
WORD = re.compile(r"\S+")
SENTENCE = re.compile(r"(?<=[.!?])\s+")
COMPLETE = "complete "  # a set's description starts with this once fully built
STAGING = "scale_staging"


def log(message: str) -> None:
    print(f"scale-{ARGS.size}: {message}", flush=True)


def show_notice(notice: Any) -> None:
    log(f"PostgreSQL: {notice.message_primary}")


class Phases:
    """Wall-clock seconds per build phase; a phase may be entered several times."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.seconds[name] = round(self.seconds.get(name, 0.0) + elapsed, 2)


class Synthesizer:
    """Synthetic chunks made from real ones (see bench/scale.py)."""

    def __init__(self, texts: list[str], vectors: np.ndarray, seed: int) -> None:
        self.texts = texts
        self.vectors = vectors
        self.sentences = [s for text in texts for s in SENTENCE.split(text) if len(s) > 20]
        unigram = Counter(word for text in texts for word in WORD.findall(text))
        self.words = list(unigram)
        cumulative = np.cumsum(np.array(list(unigram.values()), dtype=np.float64))
        self.cumulative = cumulative / cumulative[-1]
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)

    def batch(self, count: int) -> tuple[list[str], np.ndarray]:
        picks = self.nprng.integers(0, len(self.texts), count)
        noise = self.nprng.normal(0, NOISE, size=(count, self.vectors.shape[1]))
        vectors = self.vectors[picks] + noise.astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = []
        for pick in picks:
            parts = SENTENCE.split(self.texts[pick])
            parts[self.rng.randrange(len(parts))] = self.rng.choice(self.sentences)
            tokens = WORD.findall(" ".join(parts))
            swapped = np.flatnonzero(self.nprng.random(len(tokens)) < DROPOUT)
            draws = np.searchsorted(self.cumulative, self.nprng.random(len(swapped)))
            for position, draw in zip(swapped, draws, strict=True):
                tokens[position] = self.words[min(draw, len(self.words) - 1)]
            texts.append(" ".join(tokens))
        return texts, vectors


def costly_indexes() -> list[tuple[str, str]]:
    """(name, definition) of the chunk table's indexes that back no constraint.

    Read from the freshly migrated database, so they are what the migrations define.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_indexdef(c.oid)
            FROM pg_index x
            JOIN pg_class c ON c.oid = x.indexrelid
            JOIN pg_am am ON am.oid = c.relam
            WHERE x.indrelid = 'documents_chunk'::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
            ORDER BY am.amname = 'hnsw', am.amname = 'gin', c.relname
            """
        )
        return [(name, definition) for name, definition in cursor.fetchall()]


def chunk_index_definitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = 'documents_chunk'::regclass"
        )
        return {row[0] for row in cursor.fetchall()}


def copy_to_staging(
    document_ids: list[int], ordinals: list[int], texts: list[str], vectors: np.ndarray
) -> None:
    """Binary COPY: formatting 384 floats as text costs more than everything else here."""
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own cursor behind Django's wrapper
        info = TypeInfo.fetch(cursor.connection, "vector")
        register_vector_info(cursor, info)  # this cursor only: Django's reads are unchanged
        with cursor.copy(
            f"COPY {STAGING} (document_id, ordinal, text, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int4", "text", info.oid])
            for row in zip(document_ids, ordinals, texts, vectors, strict=True):
                copy.write_row(row)


def insert_from_staging(collection: Collection) -> None:
    """Staging -> chunks with their keyword representation, in one statement (the same
    SQL fragments as documents/pipeline.py's `_insert_chunks`): each row written once."""
    tsv = tsvector_sql(config="col.search_config", context="''", text="s.text")
    bm25 = bm25_sql(
        tsv="m.tsv", length="m.length", avgdl="coalesce(nullif(st.indexed_avgdl, 0), a.avgdl)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (
                SELECT s.*, col.search_config, {tsv} AS tsv
                FROM {STAGING} s JOIN documents_collection col ON col.id = %(collection)s
            ),
            m AS (SELECT staged.*, {keyword_length_sql("staged.tsv")} AS length FROM staged),
            a AS (SELECT avg(length) AS avgdl FROM m)
            INSERT INTO documents_chunk
                (document_id, collection_id, ordinal, text, char_start, char_end,
                 heading_path, token_count, context, embedding, embedding_model,
                 search_config, search_vector, keyword_length, bm25, created)
            SELECT m.document_id, %(collection)s, m.ordinal, m.text, 0, length(m.text),
                   '{{}}', 0, '', m.embedding, %(model)s, m.search_config, m.tsv, m.length,
                   {bm25}, now()
            FROM m
            CROSS JOIN a
            LEFT JOIN documents_collectiontermstats st ON st.collection_id = %(collection)s
            ORDER BY m.document_id, m.ordinal
            """,
            {"collection": collection.pk, "model": active_model_name(), **bm25_params()},
        )
        cursor.execute(f"TRUNCATE {STAGING}")


def build(size: int, source_id: int) -> tuple[Collection, dict[str, float]]:
    phase = Phases()
    started = time.perf_counter()
    with phase("migrate"):
        database_create(DATABASE, replace=True)
        call_command("migrate", verbosity=0, interactive=False)
        indexes = costly_indexes()
        expected = chunk_index_definitions()
        with connection.cursor() as cursor:
            for name, _ in indexes:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
    log(
        f"database {DATABASE} migrated ({phase.seconds['migrate']:.1f} s); dropped "
        f"{', '.join(name for name, _ in indexes)} for the load"
    )

    with phase("generate"):
        rows = list(
            Chunk.objects.using(PRODUCT)
            .filter(collection_id=source_id)
            .order_by("id")
            .values_list("text", "embedding")
        )
        synthesizer = Synthesizer(
            [text for text, _ in rows],
            np.array([vector for _, vector in rows], dtype=np.float32),
            seed=size,
        )
        collection = collection_create(owner=None, name=f"Scale set {size}", slug=f"scale-{size}")
        model = active_model_name()
        Document.objects.bulk_create(
            (
                Document(
                    collection=collection,
                    title=f"Synthetic {d}",
                    original="scale/synthetic.txt",
                    source_name="synthetic.txt",
                    mime_type="text/plain",
                    sha256=f"{size}-{d}",
                    status="ready",
                    chunk_count=min(CHUNKS_PER_DOCUMENT, size - d * CHUNKS_PER_DOCUMENT),
                    embedding_model=model,
                )
                for d in range(-(-size // CHUNKS_PER_DOCUMENT))
            ),
            batch_size=5000,
        )
        document_ids = list(
            Document.objects.filter(collection=collection)
            .order_by("id")
            .values_list("id", flat=True)
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMPORARY TABLE {STAGING} (document_id bigint, ordinal integer, "
                "text text, embedding vector)"
            )
    # A batch holds whole documents, so each batch's statistics update is complete.
    batch = max(CHUNKS_PER_DOCUMENT, ARGS.batch - ARGS.batch % CHUNKS_PER_DOCUMENT)
    for offset in range(0, size, batch):
        count = min(batch, size - offset)
        with phase("generate"):
            texts, vectors = synthesizer.batch(count)
            indexes_in_set = range(offset, offset + count)
            owners = [document_ids[i // CHUNKS_PER_DOCUMENT] for i in indexes_in_set]
            copy_to_staging(
                owners, [i % CHUNKS_PER_DOCUMENT for i in indexes_in_set], texts, vectors
            )
        with phase("load"), transaction.atomic():
            insert_from_staging(collection)
            keyword_add_documents(document_ids=sorted(set(owners)))
        elapsed = time.perf_counter() - started
        rate = (offset + count) / max(phase.seconds["generate"] + phase.seconds["load"], 1e-9)
        log(
            f"{offset + count:,}/{size:,} chunks loaded (generate {phase.seconds['generate']:.0f}"
            f" s, load {phase.seconds['load']:.0f} s, {rate:,.0f} chunks/s; "
            f"{elapsed:.0f} s elapsed)"
        )
    with phase("load"):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {STAGING}")
        if collections_needing_rebuild(collection_ids=[collection.pk]):
            log("average chunk length drifted: rebuilding the BM25 weights")
            with transaction.atomic():
                keyword_index_rebuild_collection(collection_id=collection.pk, reanalyse=False)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('maintenance_work_mem', %s, false)", [ARGS.maintenance_work_mem]
        )
        cursor.execute(
            "SELECT set_config('max_parallel_maintenance_workers', %s, false)",
            [str(ARGS.parallel_workers)],
        )
        # pgvector says here when the HNSW graph outgrows maintenance_work_mem (slow).
        connection.connection.add_notice_handler(show_notice)
        for name, definition in indexes:
            log(f"building {name} ...")
            with phase(f"index {name}"):
                cursor.execute(definition)
            log(f"built {name} in {phase.seconds[f'index {name}']:.1f} s")
        connection.connection.remove_notice_handler(show_notice)
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("RESET max_parallel_maintenance_workers")
    if chunk_index_definitions() != expected:
        raise RuntimeError("the rebuilt chunk indexes differ from the migrated ones")
    phase.seconds["index"] = round(
        sum(seconds for name, seconds in phase.seconds.items() if name.startswith("index ")), 2
    )

    with phase("analyze"), connection.cursor() as cursor:
        for table in (
            "documents_chunk",
            "documents_document",
            "documents_termdocumentfrequency",
            "documents_collectiontermstats",
        ):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    phase.seconds["total"] = round(time.perf_counter() - started, 2)
    collection.description = COMPLETE + json.dumps(phase.seconds)
    collection.save(update_fields=["description"])
    log(
        "build phases (s): "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in phase.seconds.items())
    )
    return collection, phase.seconds


def reusable(size: int) -> tuple[Collection, dict[str, float]] | None:
    """The complete set from an earlier run, if its schema is still current."""
    if ARGS.rebuild or not database_exists(DATABASE):
        return None
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return None
    collection = Collection.objects.filter(slug=f"scale-{size}").first()
    if collection is None or not collection.description.startswith(COMPLETE):
        return None
    if Chunk.objects.filter(collection=collection).count() != size:
        return None
    return collection, json.loads(collection.description[len(COMPLETE) :])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hnsw_recall(collection: Collection, embeddings: np.ndarray) -> float:
    """Recall@10 by distance: a result counts if it lies within the exact 10th distance,
    with hnsw.ef_search at the product's default candidate depth."""
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
            # ef_search as the product sets it: the semantic leg's candidate depth.
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true),"
                " set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                [str(settings.SEARCH_DEFAULTS["semantic_depth"])],
            )
            cursor.execute(sql, params)
            approx = [row[0] for row in cursor.fetchall()]
        hits += sum(1 for d in approx if d <= exact[-1] + 1e-6)
    return hits / (10 * len(embeddings))


def measure(collection: Collection, queries: list[str]) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for mode in ("keyword", "semantic", "hybrid"):
        params = SearchParams(query="", mode=mode, filters=Filters(collections=[collection.slug]))
        for query in queries[:5]:  # warm caches and the model
            search(replace(params, query=query), user=None, full_access=True)
        totals, sqls = [], []
        for query in queries:
            started = time.perf_counter()
            response = search(replace(params, query=query), user=None, full_access=True)
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
    # Only ids and chunk texts/vectors are read from the product's database, so it may
    # lag behind the latest migrations.
    source_id = (
        Collection.objects.using(PRODUCT)
        .filter(slug=corpus_collection_slug(ARGS.dataset.resolve().name))
        .values_list("pk", flat=True)
        .first()
    )
    if source_id is None:
        sys.exit("run `manage.py evaluate --dataset ../shared/datasets/scifact` first")
    queries = list(load_queries(ARGS.dataset / "queries_test.jsonl").values())[: ARGS.queries]
    found = reusable(ARGS.size)
    if found:
        log(f"reusing the complete set in database {DATABASE}")
        collection, build_seconds = found
    else:
        collection, build_seconds = build(ARGS.size, source_id)
    log("measuring latency ...")
    latency = measure(collection, queries)
    log("measuring HNSW recall ...")
    recall = hnsw_recall(collection, embed_texts(queries[: min(50, len(queries))]))
    report = {
        "latency": latency,
        "hnsw_recall@10": round(recall, 4),
        "build_seconds": build_seconds,
        "database": DATABASE,
    }
    ARGS.result.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({ARGS.size: report}), flush=True)
    if ARGS.drop:
        database_drop(DATABASE)
        log(f"dropped database {DATABASE}")


if __name__ == "__main__":
    main()

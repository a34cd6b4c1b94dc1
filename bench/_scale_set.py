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
2. generate: synthetic chunks in batches.
3. load: each batch is staged in the pipeline's staging table (documents_pendingchunk, by
   a binary COPY) and goes into the chunk table with its tsvector, length and BM25
   weights computed by the pipeline's own INSERT (`chunks_insert_from_staging` in
   bench/_scale_parts.py), then the collection's
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
import sys
import time
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
    parser.add_argument(
        "--target",
        type=int,
        default=0,
        help="also a collection of this many chunks beside the set, measured with the shared"
        " index and then with its own (the dedicated index of issue 19)",
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

DATABASE = use_database(f"scale_{ARGS.size}" + (f"_t{ARGS.target}" if ARGS.target else ""))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.migrations.executor import MigrationExecutor  # noqa: E402

from bench._scale_parts import (  # noqa: E402
    Phases,
    Synthesizer,
    chunk_index_definitions,
    costly_indexes,
    hnsw_recall,
    load_batch,
    measure,
)
from documents.embedding import active_model_name, embed_texts  # noqa: E402
from documents.keyword_index import (  # noqa: E402
    collections_needing_rebuild,
    keyword_add_documents,
    keyword_index_rebuild_collection,
)
from documents.models import Chunk, Collection, Document  # noqa: E402
from documents.services import collection_create  # noqa: E402
from documents.vector_index import index_for  # noqa: E402
from search.evaluation import corpus_collection_slug, load_queries  # noqa: E402

CHUNKS_PER_DOCUMENT = 10
COMPLETE = "complete "  # a set's description starts with this once fully built


def log(message: str) -> None:
    print(f"scale-{ARGS.size}: {message}", flush=True)


def show_notice(notice: Any) -> None:
    log(f"PostgreSQL: {notice.message_primary}")


def target_slug() -> str:
    return f"scale-{ARGS.size}-target-{ARGS.target}"


def _load_collection(
    slug: str, size: int, synthesizer: Synthesizer, phase: Phases, started: float
) -> Collection:
    """One collection of `size` synthetic chunks, loaded by the bulk path."""
    with phase("generate"):
        collection = collection_create(owner=None, name=f"Scale set {slug}", slug=slug)
        model = active_model_name()
        Document.objects.bulk_create(
            (
                Document(
                    collection=collection,
                    title=f"Synthetic {d}",
                    original="scale/synthetic.txt",
                    source_name="synthetic.txt",
                    mime_type="text/plain",
                    sha256=f"{slug}-{d}",
                    status=Document.Status.READY,
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
    # A batch holds whole documents, so each batch's statistics update is complete.
    batch = max(CHUNKS_PER_DOCUMENT, ARGS.batch - ARGS.batch % CHUNKS_PER_DOCUMENT)
    for offset in range(0, size, batch):
        count = min(batch, size - offset)
        with phase("generate"):
            texts, vectors = synthesizer.batch(count)
            indexes_in_set = range(offset, offset + count)
            owners = [document_ids[i // CHUNKS_PER_DOCUMENT] for i in indexes_in_set]
        with phase("load"), transaction.atomic():
            load_batch(owners, [i % CHUNKS_PER_DOCUMENT for i in indexes_in_set], texts, vectors)
            keyword_add_documents(document_ids=sorted(set(owners)))
        elapsed = time.perf_counter() - started
        rate = (offset + count) / max(phase.seconds["generate"] + phase.seconds["load"], 1e-9)
        log(
            f"{offset + count:,}/{size:,} chunks loaded (generate {phase.seconds['generate']:.0f}"
            f" s, load {phase.seconds['load']:.0f} s, {rate:,.0f} chunks/s; "
            f"{elapsed:.0f} s elapsed)"
        )
    with phase("load"):
        if collections_needing_rebuild(collection_ids=[collection.pk]):
            log("average chunk length drifted: rebuilding the BM25 weights")
            with transaction.atomic():
                keyword_index_rebuild_collection(collection_id=collection.pk, reanalyse=False)
    return collection


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
    collection = _load_collection(f"scale-{size}", size, synthesizer, phase, started)
    if ARGS.target:
        target_synthesizer = Synthesizer(synthesizer.texts, synthesizer.vectors, seed=size + 1)
        _load_collection(target_slug(), ARGS.target, target_synthesizer, phase, started)

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
        # The model's own HNSW index (documents/vector_index.py), which the worker builds
        # in the product: built here with the same session settings, timed like the others.
        vector_index = index_for(collection.embedding_model, collection.embedding_dimensions)
        log(f"building {vector_index.name} ...")
        with phase(f"index {vector_index.name}"):
            cursor.execute(vector_index.create_sql(concurrently=False))
        connection.connection.remove_notice_handler(show_notice)
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("RESET max_parallel_maintenance_workers")
    migrated = {d for d in chunk_index_definitions() if vector_index.name not in d}
    if migrated != expected:
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
    if ARGS.target and Chunk.objects.filter(collection__slug=target_slug()).count() != ARGS.target:
        return None
    return collection, json.loads(collection.description[len(COMPLETE) :])


def prewarm() -> None:
    """A reused set's pages may have left memory since it was built (other runs read
    other data): load the chunk table and its indexes again, so that a reused set is
    measured as warm as a freshly built one, and as the capacity plan assumes."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        cursor.execute(
            "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c"
            " WHERE c.oid = 'documents_chunk'::regclass OR c.oid IN"
            " (SELECT indexrelid FROM pg_index WHERE indrelid = 'documents_chunk'::regclass)"
        )
        blocks = cursor.fetchone()[0]
    log(f"prewarmed {blocks * 8192 / 2**30:.1f} GiB in {time.perf_counter() - started:.0f} s")


def model_index_ensure(collection: Collection) -> dict[str, float]:
    """A reused set measured with another EMBEDDING_INDEX_TYPE needs that type's index
    (the other stays, unused: the search's cast matches only its own type's index)."""
    index = index_for(collection.embedding_model, collection.embedding_dimensions)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [index.name])
        if cursor.fetchone()[0]:
            return {}
        log(f"building {index.name} ({index.kind}) ...")
        cursor.execute(
            "SELECT set_config('maintenance_work_mem', %s, false),"
            " set_config('max_parallel_maintenance_workers', %s, false)",
            [ARGS.maintenance_work_mem, str(ARGS.parallel_workers)],
        )
        started = time.perf_counter()
        cursor.execute(index.create_sql(concurrently=False))
        seconds = round(time.perf_counter() - started, 2)
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute("RESET max_parallel_maintenance_workers")
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [index.name])
        size = cursor.fetchone()[0]
    log(f"built {index.name} in {seconds} s ({size / 2**20:.0f} MB)")
    return {f"index {index.name}": seconds, f"index {index.name} bytes": size}


def measure_target(queries: list[str]) -> dict[str, Any]:
    """The target collection searched through the shared model index (filtered by
    collection, iterative scan), then through an index of its own, built as the worker
    builds it (documents/vector_index.py) with the build timed."""
    target = Collection.objects.get(slug=target_slug())
    own = index_for(target.embedding_model, target.embedding_dimensions, collection_id=target.pk)
    embeddings = embed_texts(queries[: min(50, len(queries))])
    results: dict[str, Any] = {"chunks": ARGS.target}

    def searched(dedicated: bool) -> dict[str, Any]:
        """Latency and recall with the collection's own index flagged (used) or not."""
        Collection.objects.filter(pk=target.pk).update(vector_index_dedicated=dedicated)
        target.refresh_from_db()
        return {
            "latency": measure(target, queries),
            "hnsw_recall@10": round(hnsw_recall(target, embeddings), 4),
        }

    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {own.name}")
    log(f"{target.slug}: measuring through the shared index ...")
    results["shared"] = searched(dedicated=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('maintenance_work_mem', %s, false)", [ARGS.maintenance_work_mem]
        )
        started = time.perf_counter()
        cursor.execute(own.create_sql(concurrently=True))
        results["own_index_build_seconds"] = round(time.perf_counter() - started, 2)
        cursor.execute("RESET maintenance_work_mem")
    log(f"{target.slug}: own index built in {results['own_index_build_seconds']} s; measuring ...")
    results["own"] = searched(dedicated=True)
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
        build_seconds = {**build_seconds, **model_index_ensure(collection)}
        prewarm()
    else:
        collection, build_seconds = build(ARGS.size, source_id)
    log("measuring latency ...")
    latency = measure(collection, queries)
    log("measuring HNSW recall ...")
    recall = hnsw_recall(collection, embed_texts(queries[: min(50, len(queries))]))
    report: dict[str, Any] = {
        "latency": latency,
        "hnsw_recall@10": round(recall, 4),
        "build_seconds": build_seconds,
        "database": DATABASE,
    }
    if ARGS.target:
        report["target"] = measure_target(queries)
    ARGS.result.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({ARGS.size: report}), flush=True)
    if ARGS.drop:
        database_drop(DATABASE)
        log(f"dropped database {DATABASE}")


if __name__ == "__main__":
    main()

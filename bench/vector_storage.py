"""Vector storage for issues 16 and 19: vector vs halfvec, and a dedicated index per big
collection, on synthetic tables.

    .venv/bin/python bench/vector_storage.py [--sizes 100000] [--million]
        [--collection-size 20000] [--queries 100] [--output bench/results/vector_storage.json]

Data: clustered random unit vectors of 384 dimensions with a low intrinsic dimension
(a cluster centre + a shared 24-dimensional latent spread + a little isotropic noise),
closer to text embeddings than uniform noise, which no index can search well. They are
synthetic: absolute recall on real embeddings differs; the comparisons between layouts
are what this measures. Queries are drawn from the same distribution. The exact ranking
(float32, numpy) is computed while the rows are made.

For each N, in a database of its own (`<product database>_vectors`, bench/benchdb.py):
rows 1..C form the target collection (C = --collection-size, id 1) and N more rows form
other collections of C each, all from the same clusters (the hard case for a filtered
search: most of a query's nearest neighbours belong to other collections).

a) Layouts, each over all N + C rows, HNSW m=16, ef_construction=64, cosine:
   - `vector(384)` column, index on the column (the layout before issue 16);
   - untyped `vector` column, expression index `(embedding::vector(384))` partial on the
     model name (the product's layout since issue 16);
   - the same untyped column, expression index `(embedding::halfvec(384))`;
   - a stored `halfvec(384)` column, index on the column.
   Table and index bytes per chunk (the vector columns only, not the text and keyword
   columns of the product's table), index build time, p50/p95 of top-10 queries at
   hnsw.ef_search 40 and 100, recall@10 against the exact float32 ranking.
b) The target collection on the product's layout: the shared index with
   `collection_id = 1` and iterative scans (relaxed_order, max_scan_tuples 100000, as the
   search sets them) vs a partial index `WHERE embedding_model = ... AND collection_id = 1`
   searched with the literal id, vs the same collection alone in a table of its own.
Sequential scans are turned off so that every query uses the index being measured (the
planner would scan a small table instead); the last column says which index it used.

Prints markdown tables and writes JSON. The lead runs it on a quiet machine; a check
run: `--sizes 5000 --collection-size 1000 --queries 20`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

from bench.benchdb import database_create, database_exists, database_url, use_database  # noqa: E402

DATABASE = use_database("vectors")
django.setup()

import psycopg  # noqa: E402
from pgvector.psycopg import register_vector  # noqa: E402

DIMS = 384
LATENT = 24
MODEL = "bench-model"
TARGET = 1  # the target collection's id
BATCH = 10_000
EF_SEARCH = (40, 100)
SEED = 19
Vectors = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True)
class Layout:
    name: str
    table: str
    indexed: str  # the HNSW index's expression and operator class
    order: str  # the query's ORDER BY expression (%s: the query vector)
    per_model: bool  # partial on the model's name, as the product's per-model indexes


ON_MODEL = f"embedding_model = '{MODEL}'"
LAYOUTS = (
    Layout(
        "vector(384) column", "vs_typed", "embedding vector_cosine_ops", "embedding <=> %s", False
    ),
    Layout(
        "untyped vector, expression vector(384)",
        "vs_untyped",
        f"(embedding::vector({DIMS})) vector_cosine_ops",
        f"embedding::vector({DIMS}) <=> %s::vector({DIMS})",
        True,
    ),
    Layout(
        "untyped vector, expression halfvec(384)",
        "vs_untyped",
        f"(embedding::halfvec({DIMS})) halfvec_cosine_ops",
        f"embedding::halfvec({DIMS}) <=> %s::halfvec({DIMS})",
        True,
    ),
    Layout(
        "halfvec(384) column",
        "vs_half",
        "embedding halfvec_cosine_ops",
        f"embedding <=> %s::halfvec({DIMS})",
        False,
    ),
)


class Distribution:
    """Clustered unit vectors: centre + latent spread + noise, then normalised."""

    def __init__(self, clusters: int) -> None:
        rng = np.random.default_rng(SEED)
        centres = rng.standard_normal((clusters, DIMS))
        self.centres = centres / np.linalg.norm(centres, axis=1, keepdims=True)
        self.projection = rng.standard_normal((LATENT, DIMS)) / np.sqrt(DIMS)

    def sample(self, count: int, seed: int) -> Vectors:
        rng = np.random.default_rng([SEED, seed])
        which = rng.integers(len(self.centres), size=count)
        spread = rng.standard_normal((count, LATENT)) @ self.projection * (0.8 / np.sqrt(LATENT))
        noise = rng.standard_normal((count, DIMS)) * (0.15 / np.sqrt(DIMS))
        vectors = self.centres[which] + spread + noise
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


class ExactTop:
    """The exact top-k ids per query by cosine distance, merged batch by batch."""

    def __init__(self, queries: Vectors, k: int = 10) -> None:
        self.queries = queries
        self.k = k
        self.distances = np.full((len(queries), k), np.inf)
        self.ids = np.zeros((len(queries), k), dtype=np.int64)

    def add(self, vectors: Vectors, ids: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        distances = 1.0 - (self.queries.astype(np.float64) @ vectors.astype(np.float64).T)
        all_distances = np.concatenate([self.distances, distances], axis=1)
        all_ids = np.concatenate([self.ids, np.broadcast_to(ids, distances.shape)], axis=1)
        best = np.argsort(all_distances, axis=1, kind="stable")[:, : self.k]
        self.distances = np.take_along_axis(all_distances, best, axis=1)
        self.ids = np.take_along_axis(all_ids, best, axis=1)

    def sets(self) -> list[set[int]]:
        return [set(row.tolist()) for row in self.ids]


def connect(*, maintenance_work_mem: str, parallel_workers: int) -> psycopg.Connection[Any]:
    # No server-side prepared statements (as Django's client-side binding): a generic plan
    # could not use a partial index on a literal collection id.
    connection = psycopg.connect(database_url(), autocommit=True, prepare_threshold=None)
    connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
    register_vector(connection)
    # Index builds as bench/scale.py runs them: in memory, with parallel workers.
    connection.execute(
        "SELECT set_config('maintenance_work_mem', %s, false)", [maintenance_work_mem]
    )
    connection.execute(f"SET max_parallel_maintenance_workers = {int(parallel_workers)}")
    return connection


def batches(total: int) -> Iterator[tuple[int, int]]:
    for start in range(1, total + 1, BATCH):
        yield start, min(BATCH, total - start + 1)


def load(
    connection: psycopg.Connection[Any],
    distribution: Distribution,
    *,
    n: int,
    collection_size: int,
    queries: Vectors,
) -> tuple[ExactTop, ExactTop]:
    """Make the rows (COPY into the untyped table), the two others by INSERT ... SELECT,
    and the exact top-10 over everything and over the target collection."""
    total = n + collection_size
    every, target = ExactTop(queries), ExactTop(queries)
    connection.execute(
        "DROP TABLE IF EXISTS vs_typed, vs_untyped, vs_half, vs_alone;"
        "CREATE TABLE vs_untyped (id bigint PRIMARY KEY, collection_id integer NOT NULL,"
        " embedding_model text NOT NULL, embedding vector);"
        f"CREATE TABLE vs_typed (LIKE vs_untyped INCLUDING ALL);"
        f"ALTER TABLE vs_typed ALTER embedding TYPE vector({DIMS});"
        f"CREATE TABLE vs_half (LIKE vs_untyped INCLUDING ALL);"
        f"ALTER TABLE vs_half ALTER embedding TYPE halfvec({DIMS});"
        "CREATE TABLE vs_alone (LIKE vs_untyped INCLUDING ALL)"
    )
    with connection.cursor() as cursor:
        for start, count in batches(total):
            vectors = distribution.sample(count, seed=start)
            ids = np.arange(start, start + count, dtype=np.int64)
            collections = np.where(
                ids <= collection_size, TARGET, 2 + (ids - collection_size - 1) // collection_size
            )
            every.add(vectors, ids)
            mine = ids <= collection_size
            if mine.any():
                target.add(vectors[mine], ids[mine])
            with cursor.copy(
                "COPY vs_untyped (id, collection_id, embedding_model, embedding)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "int4", "text", "vector"])
                for row in zip(ids.tolist(), collections.tolist(), vectors, strict=True):
                    copy.write_row((row[0], row[1], MODEL, row[2]))
    connection.execute(
        "INSERT INTO vs_typed SELECT * FROM vs_untyped;"
        f"INSERT INTO vs_half SELECT id, collection_id, embedding_model,"
        f" embedding::halfvec({DIMS}) FROM vs_untyped;"
        f"INSERT INTO vs_alone SELECT * FROM vs_untyped WHERE collection_id = {TARGET}"
    )
    for table in ("vs_typed", "vs_untyped", "vs_half", "vs_alone"):
        connection.execute(f"VACUUM ANALYZE {table}")
    return every, target


def build_index(
    connection: psycopg.Connection[Any], name: str, table: str, indexed: str, where: str = ""
) -> float:
    """Seconds to build an HNSW index with the product's parameters."""
    started = time.perf_counter()
    connection.execute(
        f"CREATE INDEX {name} ON {table} USING hnsw ({indexed})"
        f" WITH (m = 16, ef_construction = 64){f' WHERE {where}' if where else ''}"
    )
    elapsed = time.perf_counter() - started
    connection.execute(f"ANALYZE {table}")
    return elapsed


def relation_bytes(connection: psycopg.Connection[Any], sql: str, name: str) -> int:
    row = connection.execute(f"SELECT {sql}(%s::regclass)", [name]).fetchone()
    return int(row[0]) if row else 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    connection: psycopg.Connection[Any],
    sql: str,
    queries: Vectors,
    exact: list[set[int]],
    *,
    ef_search: int,
) -> dict[str, Any]:
    """p50/p95 (ms) of `sql` over the queries after one untimed pass, recall@10, and the
    index the plan used."""
    connection.execute(f"SET hnsw.ef_search = {int(ef_search)}")
    connection.execute("SET hnsw.iterative_scan = relaxed_order")
    connection.execute("SET hnsw.max_scan_tuples = 100000")
    # The index is what is measured: at small sizes the planner would rather scan the table.
    connection.execute("SET enable_seqscan = off")
    plan = [row[0] for row in connection.execute("EXPLAIN (COSTS OFF) " + sql, [queries[0]])]
    used = next((line.split(" using ")[1].split()[0] for line in plan if " using " in line), "")
    for query in queries:
        connection.execute(sql, [query]).fetchall()
    timings, hits = [], 0
    for query, expected in zip(queries, exact, strict=True):
        started = time.perf_counter()
        ids = [row[0] for row in connection.execute(sql, [query]).fetchall()]
        timings.append((time.perf_counter() - started) * 1000)
        hits += len(expected & set(ids))
    return {
        "ef_search": ef_search,
        "p50_ms": round(percentile(timings, 0.5), 2),
        "p95_ms": round(percentile(timings, 0.95), 2),
        "recall_at_10": round(hits / (10 * len(queries)), 4),
        "index": used or "none (sequential scan)",
    }


def layouts(
    connection: psycopg.Connection[Any], queries: Vectors, exact: list[set[int]], rows: int
) -> list[dict[str, Any]]:
    results = []
    for number, layout in enumerate(LAYOUTS):
        name = f"vs_hnsw_{number}"
        predicate = ON_MODEL if layout.per_model else ""
        seconds = build_index(connection, name, layout.table, layout.indexed, predicate)
        where = f"WHERE {predicate} " if predicate else ""
        sql = f"SELECT id FROM {layout.table} {where}ORDER BY {layout.order} LIMIT 10"
        table_bytes = relation_bytes(connection, "pg_table_size", layout.table)
        index_bytes = relation_bytes(connection, "pg_relation_size", name)
        runs = [measure(connection, sql, queries, exact, ef_search=ef) for ef in EF_SEARCH]
        results.append(
            {
                "layout": layout.name,
                "rows": rows,
                "table_bytes_per_chunk": round(table_bytes / rows),
                "index_bytes_per_chunk": round(index_bytes / rows),
                "index_mb": round(index_bytes / 2**20, 1),
                "build_s": round(seconds, 2),
                "runs": runs,
            }
        )
        if layout.table == "vs_untyped":
            connection.execute(f"DROP INDEX {name}")  # one index at a time on the shared table
    return results


def dedicated(
    connection: psycopg.Connection[Any], queries: Vectors, exact: list[set[int]]
) -> list[dict[str, Any]]:
    """The target collection: shared index + filter, its own partial index, alone."""
    indexed = f"(embedding::vector({DIMS})) vector_cosine_ops"
    order = f"ORDER BY embedding::vector({DIMS}) <=> %s::vector({DIMS}) LIMIT 10"
    filtered = f"SELECT id FROM vs_untyped WHERE {ON_MODEL} AND collection_id = {TARGET} {order}"
    alone = f"SELECT id FROM vs_alone WHERE {ON_MODEL} {order}"
    variants = (
        # (what, table, index predicate, query); each index is dropped after its runs, so
        # the planner has only the one being measured.
        ("shared index, collection filter, iterative scan", "vs_untyped", ON_MODEL, filtered),
        (
            "partial index on the collection (literal id)",
            "vs_untyped",
            f"{ON_MODEL} AND collection_id = {TARGET}",
            filtered,
        ),
        ("the collection alone", "vs_alone", ON_MODEL, alone),
    )
    measured = []
    for what, table, predicate, sql in variants:
        seconds = build_index(connection, "vs_collection_hnsw", table, indexed, predicate)
        runs = [measure(connection, sql, queries, exact, ef_search=ef) for ef in EF_SEARCH]
        measured.append({"variant": what, "build_s": round(seconds, 2), "runs": runs})
        connection.execute("DROP INDEX vs_collection_hnsw")
    return measured


def run_size(
    n: int, *, collection_size: int, query_count: int, settings: dict[str, Any]
) -> dict[str, Any]:
    total = n + collection_size
    distribution = Distribution(clusters=max(10, total // 1000))
    queries = distribution.sample(query_count, seed=0)  # rows use seeds from 1
    with connect(**settings) as connection:
        started = time.perf_counter()
        every, target = load(
            connection, distribution, n=n, collection_size=collection_size, queries=queries
        )
        load_s = time.perf_counter() - started
        layout_results = layouts(connection, queries, every.sets(), total)
        # (a) measured the shared table with each of its indexes alone; (b) builds its own.
        dedicated_results = dedicated(connection, queries, target.sets())
    return {
        "n_other": n,
        "collection_size": collection_size,
        "rows": total,
        "load_s": round(load_s, 1),
        "layouts": layout_results,
        "dedicated": dedicated_results,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = []
    for size in report["sizes"]:
        lines += [
            f"\n### {size['rows']:,} chunks ({size['n_other']:,} + a collection of "
            f"{size['collection_size']:,})\n",
            "| layout | table B/chunk | index B/chunk | index MB | build s | ef_search"
            " | p50 ms | p95 ms | recall@10 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for layout in size["layouts"]:
            for run in layout["runs"]:
                lines.append(
                    f"| {layout['layout']} | {layout['table_bytes_per_chunk']}"
                    f" | {layout['index_bytes_per_chunk']} | {layout['index_mb']}"
                    f" | {layout['build_s']} | {run['ef_search']} | {run['p50_ms']}"
                    f" | {run['p95_ms']} | {run['recall_at_10']} |"
                )
        lines += [
            "",
            "| the collection's search | build s | ef_search | p50 ms | p95 ms"
            " | p95 / alone | recall@10 | index used |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        alone = {run["ef_search"]: run["p95_ms"] for run in size["dedicated"][-1]["runs"]}
        for variant in size["dedicated"]:
            for run in variant["runs"]:
                ratio = run["p95_ms"] / alone[run["ef_search"]] if alone[run["ef_search"]] else 0
                lines.append(
                    f"| {variant['variant']} | {variant['build_s']} | {run['ef_search']}"
                    f" | {run['p50_ms']} | {run['p95_ms']} | {ratio:.2f}"
                    f" | {run['recall_at_10']} | {run['index']} |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="100000", help="other chunks N beside the collection, comma-separated"
    )
    parser.add_argument("--million", action="store_true", help="also N = 1,000,000")
    parser.add_argument("--collection-size", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--maintenance-work-mem", default="2GB")
    parser.add_argument("--parallel-workers", type=int, default=max(0, (os.cpu_count() or 1) - 1))
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/vector_storage.json")
    args = parser.parse_args()
    sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    if args.million and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    if not database_exists(DATABASE):
        database_create(DATABASE)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count()},
        "data": "synthetic clustered unit vectors (bench/vector_storage.py docstring)",
        "sizes": [],
    }
    for n in sizes:
        print(f"N = {n:,} ...", file=sys.stderr)
        settings = {
            "maintenance_work_mem": args.maintenance_work_mem,
            "parallel_workers": args.parallel_workers,
        }
        report["sizes"].append(
            run_size(
                n,
                collection_size=args.collection_size,
                query_count=args.queries,
                settings=settings,
            )
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()

"""The scale benchmark's parts that need no command line: synthetic chunks, the chunk
table's index definitions, the bulk load through the pipeline's staging table, and the
measurements. Imported by bench/_scale_set.py once Django is set up on the scale set's
database.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

from documents.embedding import active_model_name
from documents.keyword_index import chunks_insert_from_staging
from documents.models import Collection
from documents.vector_index import index_for
from search.retrieval import Filters, SearchParams, search

NOISE = 0.02
DROPOUT = 0.2  # share of each chunk's words resampled from the unigram distribution
WORD = re.compile(r"\S+")
SENTENCE = re.compile(r"(?<=[.!?])\s+")
# Synthetic chunks are staged under this fingerprint, like a document's embedded batches.
FINGERPRINT = "scale-synthetic"


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


def load_batch(
    document_ids: list[int], ordinals: list[int], texts: list[str], vectors: np.ndarray
) -> None:
    """Synthetic chunks -> chunks through the pipeline's own path: staged in
    documents_pendingchunk by a binary COPY (formatting 384 floats as text costs more than
    everything else here), then inserted with their keyword representation by the same
    statement ingestion uses (`chunks_insert_from_staging`)."""
    model = active_model_name()
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own cursor behind Django's wrapper
        info = TypeInfo.fetch(cursor.connection, "vector")
        register_vector_info(cursor, info)  # this cursor only: Django's reads are unchanged
        with cursor.copy(
            "COPY documents_pendingchunk (document_id, fingerprint, ordinal, text, char_start,"
            " char_end, heading_path, token_count, context, embedding, embedding_model)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                ["int8", "text", "int4", "text", "int4", "int4", "text[]", "int4", "text"]
                + [info.oid, "text"]
            )
            for document_id, ordinal, text, vector in zip(
                document_ids, ordinals, texts, vectors, strict=True
            ):
                copy.write_row(
                    (document_id, FINGERPRINT, ordinal, text, 0, len(text), [], 0, "", vector)
                    + (model,)
                )
    ids = sorted(set(document_ids))
    chunks_insert_from_staging(document_ids=ids, fingerprints=[FINGERPRINT] * len(ids))
    with connection.cursor() as cursor:
        # Not TRUNCATE: the rows' deferred foreign-key checks are still pending in this
        # transaction, and PostgreSQL refuses to truncate under them.
        cursor.execute("DELETE FROM documents_pendingchunk WHERE fingerprint = %s", [FINGERPRINT])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def hnsw_recall(collection: Collection, embeddings: np.ndarray) -> float:
    """Recall@10 by distance: a result counts if it lies within the exact 10th distance,
    with hnsw.ef_search at the product's default candidate depth."""
    hits = 0
    own = collection.pk if collection.vector_index_dedicated else None
    index = index_for(collection.embedding_model, collection.embedding_dimensions, own)
    vector_type = f"{index.kind}({index.dimensions})"
    # The model index's own expression and predicate, so that the planner can use it.
    sql = (
        f"SELECT {index.cast('embedding')} <=> %s::{vector_type} FROM documents_chunk "
        "WHERE collection_id = %s AND embedding_model = %s "
        f"ORDER BY {index.cast('embedding')} <=> %s::{vector_type} LIMIT 10"
    )
    for vector in embeddings:
        literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
        params: list[str | int] = [literal, collection.pk, collection.embedding_model, literal]
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

"""BM25 inside stock PostgreSQL: term weights as a pgvector ``sparsevec`` per chunk.

Why: natural-language questions need OR semantics with IDF weighting; ``ts_rank`` over
OR-ed lexemes is both slower and worse (see docs/benchmarks.md). Here each chunk stores

    w(t, d) = tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

for its lexemes (PostgreSQL's own stemming and stop words, in the collection's
language), at dimension ``rag_term_index(lexeme)``. The query side (search/retrieval)
weights its lexemes by IDF from per-collection document frequencies kept here, so a
search is an inner product and IDF is always current. ``avgdl`` is taken when a chunk is
indexed; when the collection's average drifts by more than ``AVGDL_DRIFT`` the weights
are rebuilt, so length normalisation stays within a few percent of exact.

All statements are set-based raw SQL over the chunks of some documents (or of a whole
collection), run inside the caller's transaction: chunk replacement and statistics change
together or not at all.
"""

from __future__ import annotations

from typing import Any

from django.db import connection

BM25_K1 = 0.9
BM25_B = 0.4
AVGDL_DRIFT = 0.10
# The keyword leg's sparse vectors: lexemes hashed into this many dimensions (the
# chunks' `bm25` column and both sides of the inner product use it).
SPARSE_DIMENSIONS = 1_000_000_000


def tsvector_sql(*, config: str, context: str, text: str) -> str:
    """The chunk's keyword representation: its title/heading context and its text.

    Angle brackets become spaces first: PostgreSQL's parser would otherwise take text
    such as "<script>...</script>" in a plain-text document for markup and drop words.
    """
    return f"to_tsvector({config}::regconfig, translate({context} || ' ' || {text}, '<>', '  '))"


def keyword_length_sql(tsv: str) -> str:
    """Number of indexed words (stop words excluded): BM25's document length."""
    return (
        f"coalesce((SELECT sum(coalesce(array_length(t.positions, 1), 1)) "
        f"FROM unnest({tsv}) AS t), 0)"
    )


def bm25_sql(*, tsv: str, length: str, avgdl: str) -> str:
    """BM25 term weights of one tsvector as a sparse vector; lexemes hashed to the same
    dimension are summed. Uses the %(k1)s and %(b)s parameters."""
    return f"""(
        SELECT ('{{' || string_agg(
                    tt.idx || ':' || (tt.tf * (%(k1)s + 1.0)
                        / (tt.tf + %(k1)s * (1.0 - %(b)s
                           + %(b)s * {length} / greatest({avgdl}, 1.0)))),
                    ',' ORDER BY tt.idx)
                || '}}/{SPARSE_DIMENSIONS}')::sparsevec
        FROM (SELECT rag_term_index(t.lexeme) AS idx,
                     sum(coalesce(array_length(t.positions, 1), 1)) AS tf
              FROM unnest({tsv}) AS t GROUP BY 1) AS tt)"""


def bm25_params() -> dict[str, float]:
    return {"k1": BM25_K1, "b": BM25_B}


def chunks_insert_from_staging(*, document_ids: list[int], fingerprints: list[str]) -> int:
    """Staged chunks (``documents_pendingchunk`` rows of each document under its
    fingerprint) -> chunks, with their keyword representation computed in the same
    statement: each row is written once (an UPDATE would add a second HNSW entry).

    BM25 weights use the collection's indexed average length, or this batch's own for a
    collection's first chunks. The pipeline and the scale benchmark's bulk load both
    insert through here. Returns the number of chunks inserted.
    """
    tsv = tsvector_sql(config="col.search_config", context="p.context", text="p.text")
    bm25 = bm25_sql(
        tsv="m.tsv", length="m.length", avgdl="coalesce(nullif(s.indexed_avgdl, 0), a.avgdl)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (
                SELECT p.*, d.collection_id, col.search_config, {tsv} AS tsv
                FROM unnest(%(ids)s::bigint[], %(fingerprints)s::text[])
                     AS w(document_id, fingerprint)
                JOIN documents_pendingchunk p
                  ON p.document_id = w.document_id AND p.fingerprint = w.fingerprint
                JOIN documents_document d ON d.id = p.document_id
                JOIN documents_collection col ON col.id = d.collection_id
            ),
            m AS (SELECT staged.*, {keyword_length_sql("staged.tsv")} AS length FROM staged),
            a AS (SELECT collection_id, avg(length) AS avgdl FROM m GROUP BY collection_id)
            INSERT INTO documents_chunk
                (document_id, collection_id, ordinal, text, char_start, char_end, first_page,
                 last_page, heading_path, token_count, context, embedding, embedding_model,
                 search_config, search_vector, keyword_length, bm25, created)
            SELECT m.document_id, m.collection_id, m.ordinal, m.text, m.char_start,
                   m.char_end, m.first_page, m.last_page, m.heading_path, m.token_count,
                   m.context, m.embedding, m.embedding_model, m.search_config, m.tsv,
                   m.length, {bm25}, now()
            FROM m
            JOIN a ON a.collection_id = m.collection_id
            LEFT JOIN documents_collectiontermstats s ON s.collection_id = m.collection_id
            ORDER BY m.document_id, m.ordinal
            """,
            {"ids": list(document_ids), "fingerprints": list(fingerprints), **bm25_params()},
        )
        return int(cursor.rowcount)


def keyword_lock_collections(*, collection_ids: list[int]) -> None:
    """Lock the collections' statistics rows, in id order, for the transaction.

    Every write of the keyword statistics takes these locks first, before any term row:
    a worker indexing, a delete unindexing and a rebuild then queue up on one row per
    collection, in one order, instead of deadlocking on term rows taken in different
    orders (a rebuild deletes term rows before it updates the statistics row).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT collection_id FROM documents_collectiontermstats "
            "WHERE collection_id = ANY(%s) ORDER BY collection_id FOR UPDATE",
            [sorted(set(collection_ids))],
        )


def keyword_add_documents(*, document_ids: list[int]) -> None:
    """Add the documents' (new, already indexed) chunks to their collections' statistics.

    Chunks get their tsvector, length and BM25 weights when they are inserted (see
    `chunks_insert_from_staging`), so each row is written once: every UPDATE of a chunk
    would also add a new entry to its HNSW index.
    """
    with connection.cursor() as cursor:
        _add_to_stats(cursor, document_ids=document_ids, sign=1)


def keyword_unindex_documents(*, document_ids: list[int]) -> None:
    """Remove the documents' current chunks from the statistics (before deleting them)."""
    with connection.cursor() as cursor:
        _add_to_stats(cursor, document_ids=document_ids, sign=-1)


def collections_needing_rebuild(*, collection_ids: list[int]) -> list[int]:
    """Collections whose average chunk length drifted from the one their weights use."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT collection_id FROM documents_collectiontermstats
            WHERE collection_id = ANY(%s) AND chunk_count > 0
              AND (indexed_avgdl <= 0
                   OR abs(total_length::float8 / chunk_count - indexed_avgdl) / indexed_avgdl
                      > %s)
            """,
            [list(collection_ids), AVGDL_DRIFT],
        )
        return [row[0] for row in cursor.fetchall()]


def keyword_index_rebuild_collection(*, collection_id: int, reanalyse: bool = True) -> None:
    """Recompute a collection's statistics and BM25 weights from scratch.

    ``reanalyse`` also re-parses every chunk (the collection's language changed);
    without it only the weights are recomputed (its average chunk length drifted).
    """
    params: dict[str, Any] = {"collection": collection_id, **bm25_params()}
    keyword_lock_collections(collection_ids=[collection_id])
    with connection.cursor() as cursor:
        if reanalyse:
            tsv = tsvector_sql(config="c.search_config", context="c.context", text="c.text")
            cursor.execute(
                f"""
                UPDATE documents_chunk c
                SET search_vector = v.tsv, keyword_length = {keyword_length_sql("v.tsv")}
                FROM (SELECT id, {tsv} AS tsv FROM documents_chunk c
                      WHERE c.collection_id = %(collection)s) v
                WHERE c.id = v.id
                """,
                params,
            )
        cursor.execute(
            "DELETE FROM documents_termdocumentfrequency WHERE collection_id = %(collection)s",
            params,
        )
        cursor.execute(
            """
            INSERT INTO documents_termdocumentfrequency (collection_id, lexeme, df)
            SELECT %(collection)s, t.lexeme, count(*)
            FROM documents_chunk c, unnest(c.search_vector) AS t
            WHERE c.collection_id = %(collection)s
            GROUP BY t.lexeme
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO documents_collectiontermstats
                (collection_id, chunk_count, total_length, indexed_avgdl)
            SELECT %(collection)s, count(*), coalesce(sum(keyword_length), 0),
                   coalesce(avg(keyword_length), 0)
            FROM documents_chunk WHERE collection_id = %(collection)s
            ON CONFLICT (collection_id) DO UPDATE
            SET chunk_count = EXCLUDED.chunk_count,
                total_length = EXCLUDED.total_length,
                indexed_avgdl = EXCLUDED.indexed_avgdl
            """,
            params,
        )
        bm25 = bm25_sql(tsv="c.search_vector", length="c.keyword_length", avgdl="s.indexed_avgdl")
        cursor.execute(
            f"""
            UPDATE documents_chunk c SET bm25 = {bm25}
            FROM documents_collectiontermstats s
            WHERE s.collection_id = c.collection_id AND c.collection_id = %(collection)s
            """,
            params,
        )


def _add_to_stats(cursor: Any, *, document_ids: list[int], sign: int) -> None:
    """Add (sign=1) or subtract (sign=-1) the documents' chunks to their collections."""
    params = {"ids": list(document_ids), "sign": sign}
    cursor.execute(
        "SELECT DISTINCT collection_id FROM documents_document WHERE id = ANY(%(ids)s)", params
    )
    keyword_lock_collections(collection_ids=[row[0] for row in cursor.fetchall()])
    cursor.execute(
        """
        INSERT INTO documents_collectiontermstats
            (collection_id, chunk_count, total_length, indexed_avgdl)
        SELECT c.collection_id, %(sign)s * count(*), %(sign)s * sum(c.keyword_length),
               CASE WHEN %(sign)s > 0 THEN avg(c.keyword_length) ELSE 0 END
        FROM documents_chunk c WHERE c.document_id = ANY(%(ids)s)
        GROUP BY c.collection_id ORDER BY c.collection_id
        ON CONFLICT (collection_id) DO UPDATE
        SET chunk_count = documents_collectiontermstats.chunk_count + EXCLUDED.chunk_count,
            total_length = documents_collectiontermstats.total_length + EXCLUDED.total_length
        """,
        params,
    )
    # Rows in a fixed order, so two workers updating the same hot rows (common words)
    # lock them in the same order and cannot deadlock.
    cursor.execute(
        """
        INSERT INTO documents_termdocumentfrequency (collection_id, lexeme, df)
        SELECT c.collection_id, t.lexeme, %(sign)s * count(*)
        FROM documents_chunk c, unnest(c.search_vector) AS t
        WHERE c.document_id = ANY(%(ids)s)
        GROUP BY c.collection_id, t.lexeme ORDER BY c.collection_id, t.lexeme
        ON CONFLICT (collection_id, lexeme) DO UPDATE
        SET df = documents_termdocumentfrequency.df + EXCLUDED.df
        """,
        params,
    )
    if sign < 0:
        cursor.execute(
            """
            DELETE FROM documents_termdocumentfrequency f
            USING (SELECT DISTINCT c.collection_id, t.lexeme
                   FROM documents_chunk c, unnest(c.search_vector) AS t
                   WHERE c.document_id = ANY(%(ids)s)) gone
            WHERE f.collection_id = gone.collection_id AND f.lexeme = gone.lexeme
              AND f.df <= 0
            """,
            params,
        )

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

# tf per lexeme of a chunk's tsvector; lexemes hashed to the same dimension are summed.
_TERM_TF_SQL = """
    SELECT rag_term_index(t.lexeme) AS idx, sum(coalesce(array_length(t.positions, 1), 1)) AS tf
    FROM unnest(c.search_vector) AS t
    GROUP BY 1
"""

# The chunk's title/heading context is indexed with its text (see pipeline.keyword_context).
# Angle brackets become spaces first: PostgreSQL's parser would otherwise take text such
# as "<script>...</script>" in a plain-text document for markup and drop words from it.
_TSVECTOR_SQL = (
    "to_tsvector(c.search_config::regconfig, translate(c.context || ' ' || c.text, '<>', '  '))"
)

_UPDATE_VECTORS_SQL = f"""
    UPDATE documents_chunk c
    SET search_vector = {_TSVECTOR_SQL}
    WHERE {{where}};
    UPDATE documents_chunk c
    SET keyword_length = coalesce((SELECT sum(tt.tf) FROM ({_TERM_TF_SQL}) tt), 0)
    WHERE {{where}};
"""

_UPDATE_BM25_SQL = f"""
    UPDATE documents_chunk c
    SET bm25 = (
        SELECT ('{{{{' || string_agg(
                    tt.idx || ':' || (tt.tf * (%(k1)s + 1.0)
                        / (tt.tf + %(k1)s * (1.0 - %(b)s
                           + %(b)s * c.keyword_length / greatest(s.indexed_avgdl, 1.0)))),
                    ',' ORDER BY tt.idx)
                || '}}}}/{1_000_000_000}')::sparsevec
        FROM ({_TERM_TF_SQL}) AS tt)
    FROM documents_collectiontermstats s
    WHERE s.collection_id = c.collection_id AND {{where}}
"""


def keyword_index_documents(*, document_ids: list[int]) -> None:
    """Index the (new) chunks of these documents and add them to their collections'
    statistics. Expects ``search_config`` and ``context`` set on the chunks."""
    params = {"ids": list(document_ids), "k1": BM25_K1, "b": BM25_B}
    where = "c.document_id = ANY(%(ids)s)"
    with connection.cursor() as cursor:
        for statement in _UPDATE_VECTORS_SQL.format(where=where).split(";"):
            if statement.strip():
                cursor.execute(statement, params)
        _add_to_stats(cursor, document_ids=document_ids, sign=1)
        cursor.execute(_UPDATE_BM25_SQL.format(where=where), params)


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


def keyword_index_rebuild_collection(*, collection_id: int) -> None:
    """Recompute every chunk's vectors and the statistics of a collection from scratch.

    Used when the collection's language changes or its average chunk length drifted.
    """
    params: dict[str, Any] = {"collection": collection_id, "k1": BM25_K1, "b": BM25_B}
    where = "c.collection_id = %(collection)s"
    with connection.cursor() as cursor:
        for statement in _UPDATE_VECTORS_SQL.format(where=where).split(";"):
            if statement.strip():
                cursor.execute(statement, params)
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
        cursor.execute(_UPDATE_BM25_SQL.format(where=where), params)


def _add_to_stats(cursor: Any, *, document_ids: list[int], sign: int) -> None:
    """Add (sign=1) or subtract (sign=-1) the documents' chunks to their collections."""
    params = {"ids": list(document_ids), "sign": sign}
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

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

All statements are raw SQL over the rows of one document or collection, run inside the
caller's transaction: chunk replacement and statistics change together or not at all.
"""

from __future__ import annotations

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

_BM25_VECTOR_SQL = f"""
    (SELECT ('{{' || string_agg(
                 tt.idx || ':' || (tt.tf * (%(k1)s + 1.0)
                     / (tt.tf + %(k1)s * (1.0 - %(b)s + %(b)s * c.keyword_length / %(avgdl)s))),
                 ',' ORDER BY tt.idx)
             || '}}/{1_000_000_000}')::sparsevec
     FROM ({_TERM_TF_SQL}) AS tt)
"""


def keyword_index_document(*, document_id: int) -> None:
    """Index the (new) chunks of a document and add them to the collection statistics.

    Expects ``search_config`` set on the chunks; fills ``search_vector``, ``keyword_length``
    and ``bm25``.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE documents_chunk c
            SET search_vector = to_tsvector(c.search_config::regconfig, c.text)
            WHERE c.document_id = %s
            """,
            [document_id],
        )
        cursor.execute(
            f"""
            UPDATE documents_chunk c
            SET keyword_length = coalesce((SELECT sum(tt.tf) FROM ({_TERM_TF_SQL}) tt), 0)
            WHERE c.document_id = %s
            """,
            [document_id],
        )
        collection_id = _add_to_stats(cursor, document_id=document_id, sign=1)
        avgdl = _indexed_avgdl(cursor, collection_id)
        cursor.execute(
            f"UPDATE documents_chunk c SET bm25 = {_BM25_VECTOR_SQL} WHERE c.document_id = %(doc)s",
            {"k1": BM25_K1, "b": BM25_B, "avgdl": avgdl, "doc": document_id},
        )


def keyword_unindex_document(*, document_id: int) -> None:
    """Remove a document's current chunks from the statistics (before deleting them)."""
    with connection.cursor() as cursor:
        _add_to_stats(cursor, document_id=document_id, sign=-1)


def keyword_index_needs_rebuild(*, collection_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT chunk_count, total_length, indexed_avgdl
            FROM documents_collectiontermstats WHERE collection_id = %s
            """,
            [collection_id],
        )
        row = cursor.fetchone()
    if row is None or not row[0]:
        return False
    current = row[1] / row[0]
    return row[2] <= 0 or abs(current - row[2]) / row[2] > AVGDL_DRIFT


def keyword_index_rebuild_collection(*, collection_id: int) -> None:
    """Recompute every chunk's vectors and the statistics of a collection from scratch.

    Used when the collection's language changes or its average chunk length drifted.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE documents_chunk c
            SET search_vector = to_tsvector(c.search_config::regconfig, c.text)
            WHERE c.collection_id = %s
            """,
            [collection_id],
        )
        cursor.execute(
            f"""
            UPDATE documents_chunk c
            SET keyword_length = coalesce((SELECT sum(tt.tf) FROM ({_TERM_TF_SQL}) tt), 0)
            WHERE c.collection_id = %s
            """,
            [collection_id],
        )
        cursor.execute(
            "DELETE FROM documents_termdocumentfrequency WHERE collection_id = %s",
            [collection_id],
        )
        cursor.execute(
            """
            INSERT INTO documents_termdocumentfrequency (collection_id, lexeme, df)
            SELECT %s, t.lexeme, count(*)
            FROM documents_chunk c, unnest(c.search_vector) AS t
            WHERE c.collection_id = %s
            GROUP BY t.lexeme
            """,
            [collection_id, collection_id],
        )
        cursor.execute(
            """
            INSERT INTO documents_collectiontermstats
                (collection_id, chunk_count, total_length, indexed_avgdl)
            SELECT %s, count(*), coalesce(sum(keyword_length), 0),
                   coalesce(avg(keyword_length), 0)
            FROM documents_chunk WHERE collection_id = %s
            ON CONFLICT (collection_id) DO UPDATE
            SET chunk_count = EXCLUDED.chunk_count,
                total_length = EXCLUDED.total_length,
                indexed_avgdl = EXCLUDED.indexed_avgdl
            """,
            [collection_id, collection_id],
        )
        avgdl = _indexed_avgdl(cursor, collection_id)
        cursor.execute(
            f"UPDATE documents_chunk c SET bm25 = {_BM25_VECTOR_SQL} "
            "WHERE c.collection_id = %(collection)s",
            {"k1": BM25_K1, "b": BM25_B, "avgdl": avgdl, "collection": collection_id},
        )


def _add_to_stats(cursor: object, *, document_id: int, sign: int) -> int:
    """Add (sign=1) or subtract (sign=-1) a document's chunks to its collection's stats."""
    cursor.execute(  # type: ignore[attr-defined]
        """
        SELECT d.collection_id, count(c.id), coalesce(sum(c.keyword_length), 0)
        FROM documents_document d LEFT JOIN documents_chunk c ON c.document_id = d.id
        WHERE d.id = %s GROUP BY d.collection_id
        """,
        [document_id],
    )
    collection_id, count, length = cursor.fetchone()  # type: ignore[attr-defined]
    cursor.execute(  # type: ignore[attr-defined]
        """
        INSERT INTO documents_collectiontermstats
            (collection_id, chunk_count, total_length, indexed_avgdl)
        VALUES (%(collection)s, %(count)s, %(length)s,
                CASE WHEN %(count)s > 0 THEN %(length)s::float / %(count)s ELSE 0 END)
        ON CONFLICT (collection_id) DO UPDATE
        SET chunk_count = documents_collectiontermstats.chunk_count + %(count)s,
            total_length = documents_collectiontermstats.total_length + %(length)s
        """,
        {"collection": collection_id, "count": sign * count, "length": sign * length},
    )
    # Lexemes in a fixed order, so two workers updating the same hot rows (common
    # words) lock them in the same order and cannot deadlock.
    cursor.execute(  # type: ignore[attr-defined]
        """
        INSERT INTO documents_termdocumentfrequency (collection_id, lexeme, df)
        SELECT %(collection)s, t.lexeme, %(sign)s * count(*)
        FROM documents_chunk c, unnest(c.search_vector) AS t
        WHERE c.document_id = %(doc)s
        GROUP BY t.lexeme ORDER BY t.lexeme
        ON CONFLICT (collection_id, lexeme) DO UPDATE
        SET df = documents_termdocumentfrequency.df + EXCLUDED.df
        """,
        {"collection": collection_id, "sign": sign, "doc": document_id},
    )
    if sign < 0:
        cursor.execute(  # type: ignore[attr-defined]
            """
            DELETE FROM documents_termdocumentfrequency
            WHERE collection_id = %(collection)s AND df <= 0 AND lexeme IN (
                SELECT t.lexeme FROM documents_chunk c, unnest(c.search_vector) AS t
                WHERE c.document_id = %(doc)s)
            """,
            {"collection": collection_id, "doc": document_id},
        )
    return collection_id


def _indexed_avgdl(cursor: object, collection_id: int) -> float:
    cursor.execute(  # type: ignore[attr-defined]
        "SELECT indexed_avgdl FROM documents_collectiontermstats WHERE collection_id = %s",
        [collection_id],
    )
    row = cursor.fetchone()  # type: ignore[attr-defined]
    return max(float(row[0]) if row else 1.0, 1.0)

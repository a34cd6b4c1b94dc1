"""The hybrid search as one SQL statement.

Why raw SQL: the statement is a chain of CTEs (scope -> query lexemes with IDF -> BM25
leg -> HNSW leg -> reciprocal rank fusion -> snippets) that the ORM would hide. Every
value is a bound parameter; only fragments chosen here (never user text) are spliced in.

- scope: the collections the caller may read (public, owned, granted to the user or one
  of their groups; the rule of documents/selectors.py), narrowed by the collection
  filter. Access is decided here, inside the statement, so each leg ranks only readable chunks and a
  caller always gets a full top_k from what they may read.
- Keyword leg (BM25, see documents/keyword_index.py): the query is analysed with each
  collection's own language; its lexemes are weighted by that collection's IDF into a
  sparse vector and scored by inner product against the chunks' BM25 weight vectors.
  Only chunks containing one of the rarest query terms are scored (GIN on the tsvector):
  terms are taken rarest first while their summed posting count stays within
  `PRUNE_POSTINGS`, and up to `PRUNE_MIN_TERMS` of them while it stays within
  `PRUNE_POSTINGS_MAX`; the rarest term always. On a small collection that is every
  term (exact BM25); on a large one it bounds the work per query (scoring costs ~10 us a
  chunk: at 1M chunks, three forced common terms meant 100k+ chunks and a second).
  Collections of different languages are searched together by merging their BM25
  scores, each computed with the collection's own statistics.
- Semantic leg: cosine distance over the HNSW index, restricted to chunks embedded by
  the active model; iterative index scans (set by the caller) keep filtered queries full.
  When the readable scope is small (at most `exact_max_chunks` chunks, counted from the
  collections' statistics) the leg ranks those chunks exactly instead: in a big shared
  table the index would walk past many other collections' vectors (and an iterative scan
  gives up after `hnsw.max_scan_tuples`), while reading a few thousand rows is cheap.
  Exactly one of the two branches runs; the other is cut by a one-time filter.
- Fusion: score = sum(weight / (rrf_k + rank)) over the legs a chunk appears in.
"""

from __future__ import annotations

import json
from typing import Any

from documents.keyword_index import SPARSE_DIMENSIONS
from search.retrieval.types import Filters

PRUNE_MIN_TERMS = 3
PRUNE_POSTINGS = 5_000
PRUNE_POSTINGS_MAX = 10_000

_SCOPE = """
scope AS (
    SELECT col.id, col.slug, col.search_config::regconfig AS cfg
    FROM documents_collection col
    WHERE (%(full_access)s OR col.is_public OR col.owner_id = %(user_id)s
           OR EXISTS (SELECT 1 FROM documents_collectiongrant g
                      WHERE g.collection_id = col.id
                        AND (g.user_id = %(user_id)s
                             OR g.group_id IN (SELECT ug.group_id FROM auth_user_groups ug
                                               WHERE ug.user_id = %(user_id)s))))
      AND (%(collection_slugs)s::text[] IS NULL OR col.slug = ANY(%(collection_slugs)s::text[]))
)"""

_KEYWORD_CTES = f"""
qlex AS (
    SELECT s.id AS collection_id, t.lexeme, df.df,
           ln(1.0 + (st.chunk_count - df.df + 0.5) / (df.df + 0.5)) AS idf
    FROM scope s
    CROSS JOIN LATERAL unnest(to_tsvector(s.cfg, %(query_text)s)) AS t
    JOIN documents_termdocumentfrequency df
      ON df.collection_id = s.id AND df.lexeme = t.lexeme AND df.df > 0
    JOIN documents_collectiontermstats st ON st.collection_id = s.id
),
qranked AS (
    SELECT q.*,
           row_number() OVER (PARTITION BY q.collection_id ORDER BY q.df, q.lexeme) AS rn,
           sum(q.df) OVER (PARTITION BY q.collection_id ORDER BY q.df, q.lexeme) AS postings
    FROM qlex q
),
qvec AS (
    SELECT v.collection_id,
           ('{{' || string_agg(v.idx || ':' || v.idf, ',' ORDER BY v.idx)
            || '}}/{SPARSE_DIMENSIONS}')::sparsevec AS vec
    FROM (SELECT collection_id, rag_term_index(lexeme) AS idx, sum(idf) AS idf
          FROM qlex GROUP BY 1, 2) v
    GROUP BY v.collection_id
),
qprune AS (
    SELECT collection_id,
           string_agg(
               '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | '
           )::tsquery AS tsq
    FROM qranked
    WHERE rn = 1 OR postings <= %(prune_postings)s
       OR (rn <= %(prune_min_terms)s AND postings <= %(prune_postings_max)s)
    GROUP BY collection_id
),
qall AS (
    SELECT collection_id,
           string_agg(
               '''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | '
           )::tsquery AS tsq
    FROM qlex GROUP BY collection_id
),
kw AS (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT c.id, -(c.bm25 <#> qv.vec) AS score
        FROM documents_chunk c
        JOIN qprune qp ON qp.collection_id = c.collection_id
        JOIN qvec qv ON qv.collection_id = c.collection_id
        WHERE c.search_vector @@ qp.tsq __CHUNK_FILTERS__
        ORDER BY c.bm25 <#> qv.vec, c.id
        LIMIT %(keyword_depth)s
    ) ranked
)"""

_SEMANTIC_CTE = """
scope_size AS (
    SELECT coalesce(sum(st.chunk_count), 0) AS chunks
    FROM documents_collectiontermstats st
    WHERE st.collection_id IN (SELECT id FROM scope)
),
sem AS (
    SELECT id, 1 - distance AS score, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        (SELECT c.id, c.embedding <=> %(embedding)s::vector AS distance
         FROM documents_chunk c
         WHERE (SELECT chunks FROM scope_size) > %(exact_max_chunks)s
           AND c.collection_id IN (SELECT id FROM scope)
           AND c.embedding_model = %(model)s __CHUNK_FILTERS__
         ORDER BY c.embedding <=> %(embedding)s::vector
         LIMIT %(semantic_depth)s)
        UNION ALL
        -- "+ 0" keeps the planner off the HNSW index: this branch reads the scope's
        -- chunks through the collection index and ranks them exactly.
        (SELECT c.id, c.embedding <=> %(embedding)s::vector AS distance
         FROM documents_chunk c
         WHERE (SELECT chunks FROM scope_size) <= %(exact_max_chunks)s
           AND c.collection_id IN (SELECT id FROM scope)
           AND c.embedding_model = %(model)s __CHUNK_FILTERS__
         ORDER BY (c.embedding <=> %(embedding)s::vector) + 0, c.id
         LIMIT %(semantic_depth)s)
    ) nearest
)"""

_EMPTY_KW = (
    "kw AS (SELECT NULL::bigint AS id, NULL::float8 AS score, NULL::bigint AS rank WHERE false)"
)
_EMPTY_QALL = "qall AS (SELECT NULL::bigint AS collection_id, NULL::tsquery AS tsq WHERE false)"
_EMPTY_SEM = (
    "sem AS (SELECT NULL::bigint AS id, NULL::float8 AS score, NULL::bigint AS rank WHERE false)"
)

_FUSION = """
fused AS (
    SELECT coalesce(k.id, s.id) AS id,
           __SCORE__ AS score,
           k.rank AS kw_rank, k.score AS kw_score, s.rank AS sem_rank, s.score AS sem_score
    FROM kw k FULL OUTER JOIN sem s ON s.id = k.id
),
filtered AS (
    SELECT f.*, c.document_id,
           row_number() OVER (PARTITION BY c.document_id ORDER BY f.score DESC, f.id) AS doc_rn
    FROM fused f JOIN documents_chunk c ON c.id = f.id
    WHERE (%(min_score)s::float8 IS NULL OR f.score >= %(min_score)s::float8)
),
page AS (
    SELECT *, count(*) OVER () AS total
    FROM filtered
    WHERE NOT %(group_by_document)s OR doc_rn = 1
    ORDER BY score DESC, id
    LIMIT %(limit)s OFFSET %(offset)s
)
SELECT p.id AS chunk_id, p.score, p.kw_rank, p.kw_score, p.sem_rank, p.sem_score, p.total,
       c.text, c.ordinal, c.char_start, c.char_end, c.first_page, c.last_page, c.heading_path,
       d.id AS document_id, d.title, d.source_name, d.metadata, s.slug AS collection,
       -- The snippet comes from the chunk's start: ts_headline over a huge chunk (one
       -- stored before the chunker bounded them) would take seconds.
       ts_headline(s.cfg,
                   replace(replace(replace(replace(replace(
                           left(c.text, %(headline_chars)s), chr(57344), ''), chr(57345), ''),
                           '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   coalesce(qa.tsq, ''::tsquery),
                   'StartSel=' || chr(57344) || ', StopSel=' || chr(57345)
                   || ', MaxWords=40, MinWords=20, MaxFragments=2, FragmentDelimiter=" … "')
           AS headline,
       __EMBEDDING__ AS embedding
FROM page p
JOIN documents_chunk c ON c.id = p.id
JOIN documents_document d ON d.id = c.document_id
JOIN scope s ON s.id = c.collection_id
LEFT JOIN qall qa ON qa.collection_id = c.collection_id
ORDER BY p.score DESC, p.id
"""

# Snippets: the chunk text is HTML-escaped *before* ts_headline (which would otherwise
# drop anything that looks like a tag, so "<script>" in a document would vanish instead
# of being shown), and matches are wrapped in these private-use sentinels (removed from
# the text first), which Python turns into <mark> elements.
MARK_START = "\ue000"
MARK_END = "\ue001"


def chunk_filter_sql(
    filters: Filters, *, phrases: list[str], excluded: list[str], excluded_phrases: list[str]
) -> tuple[str, dict[str, Any]]:
    """AND-ed conditions on chunk `c`, for both legs."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    document_conditions: list[str] = []
    if filters.documents is not None:
        parts.append("c.document_id = ANY(%(f_documents)s::bigint[])")
        params["f_documents"] = list(filters.documents)
    if filters.metadata:
        document_conditions.append("d.metadata @> %(f_metadata)s::jsonb")
        params["f_metadata"] = json.dumps(filters.metadata)
    for i, (key, values) in enumerate((filters.metadata_any or {}).items()):
        # One containment test per key against an array of {key: value} objects: the
        # cost grows with the number of values, and the GIN index on metadata applies
        # (a subquery per key made the planner's work explode with the key count).
        document_conditions.append(f"d.metadata @> ANY(%(f_any_{i})s::jsonb[])")
        params[f"f_any_{i}"] = [json.dumps({key: value}) for value in values]
    if filters.created_after is not None:
        document_conditions.append("d.created >= %(f_after)s")
        params["f_after"] = filters.created_after
    if filters.created_before is not None:
        document_conditions.append("d.created < %(f_before)s")
        params["f_before"] = filters.created_before
    if filters.mime_types is not None:
        document_conditions.append("d.mime_type = ANY(%(f_mime)s::text[])")
        params["f_mime"] = list(filters.mime_types)
    if document_conditions:
        parts.append(
            "c.document_id IN (SELECT d.id FROM documents_document d WHERE "
            + " AND ".join(document_conditions)
            + ")"
        )
    for i, phrase in enumerate(phrases):
        parts.append(
            f"c.search_vector @@ phraseto_tsquery(c.search_config::regconfig, %(f_phrase_{i})s)"
        )
        params[f"f_phrase_{i}"] = phrase
    for i, term in enumerate([*excluded, *excluded_phrases]):
        parts.append(
            "NOT coalesce(c.search_vector @@ "
            f"phraseto_tsquery(c.search_config::regconfig, %(f_not_{i})s), false)"
        )
        params[f"f_not_{i}"] = term
    return "".join(f" AND {part}" for part in parts), params


def build_search_sql(*, mode: str, chunk_filters: str, with_embeddings: bool) -> str:
    ctes = [_SCOPE]
    if mode in ("hybrid", "keyword"):
        ctes.append(_KEYWORD_CTES.replace("__CHUNK_FILTERS__", chunk_filters))
    else:
        ctes.extend([_EMPTY_KW, _EMPTY_QALL])
    if mode in ("hybrid", "semantic"):
        ctes.append(_SEMANTIC_CTE.replace("__CHUNK_FILTERS__", chunk_filters))
    else:
        ctes.append(_EMPTY_SEM)
    if mode == "hybrid":
        score = (
            "coalesce(%(keyword_weight)s / (%(rrf_k)s + k.rank), 0)"
            " + coalesce(%(semantic_weight)s / (%(rrf_k)s + s.rank), 0)"
        )
    elif mode == "keyword":
        score = "k.score"
    else:
        score = "s.score"
    embedding_column = "c.embedding::real[]" if with_embeddings else "NULL"
    return (
        "WITH "
        + ",".join(ctes)
        + ","
        + _FUSION.replace("__SCORE__", score).replace("__EMBEDDING__", embedding_column)
    )

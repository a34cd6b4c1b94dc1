"""The hybrid search as one SQL statement.

Why raw SQL: the statement is a chain of CTEs (scope -> query lexemes with IDF -> BM25
leg -> HNSW leg -> fusion -> snippets) that the ORM would hide. Every
value is a bound parameter; only fragments chosen here (never user text) are spliced in.

- scope: the collections the caller may read (public, owned, granted to the user or one
  of their groups; the rule of documents/selectors.py), narrowed by the collection
  filter. Access is decided here, inside the statement, so each leg ranks only readable chunks and a
  caller always gets a full top_k from what they may read.
- Keyword leg (BM25, see documents/keyword_index.py): the query is analysed with each
  collection's own language; its lexemes are weighted by that collection's IDF into a
  sparse vector and scored by inner product against the chunks' BM25 weight vectors.
  Only chunks containing one of the rarest query terms are scored (one GIN index on
  collection_id and the tsvector, so other collections' postings are skipped):
  terms are taken rarest first while their summed posting count stays within
  `PRUNE_POSTINGS`, and up to `PRUNE_MIN_TERMS` of them while it stays within
  `PRUNE_POSTINGS_MAX`; the rarest term always. On a small collection that is every
  term (exact BM25); on a large one it bounds the work per query (scoring costs ~10 us a
  chunk: at 1M chunks, three forced common terms meant 100k+ chunks and a second).
  Collections of different languages are searched together by merging their BM25
  scores, each computed with the collection's own statistics.
- Semantic legs, one per embedding model among the scope's collections (each collection
  records its model): cosine distance over that model's HNSW index (an expression index
  per model, documents/vector_index.py); iterative index scans (set by the caller) keep
  filtered queries full.
  When the readable scope is small (at most `exact_max_chunks` chunks, counted from the
  collections' statistics) the leg ranks those chunks exactly instead: in a big shared
  table the index would walk past many other collections' vectors (and an iterative scan
  gives up after `hnsw.max_scan_tuples`), while reading a few thousand rows is cheap.
  Exactly one of the two branches runs; the other is cut by a one-time filter.
- Fusion: `rrf`: score = sum(weight / (rrf_k + rank)) over the legs a chunk appears in;
  `score` (the default, SEARCH_FUSION): each leg's scores min-max normalised to [0, 1], then
  alpha * semantic + (1 - alpha) * keyword (a leg a chunk is missing from counts 0), alpha
  being the request's, else the chunk's collection's (Collection.search_alpha), else
  SEARCH_ALPHA: collections searched together each keep the alpha tuned for them.
  Legs of different models only ever meet by rank (RRF) or normalised score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from documents.embedding.spec import sql_literal
from documents.keyword_index import SPARSE_DIMENSIONS
from documents.vector_index import VectorIndex
from search.retrieval.types import Filters

PRUNE_MIN_TERMS = 3
PRUNE_POSTINGS = 5_000
PRUNE_POSTINGS_MAX = 10_000

_SCOPE = """
scope AS (
    SELECT col.id, col.slug, col.search_config::regconfig AS cfg, col.embedding_model AS model,
           col.vector_index_dedicated AS dedicated, col.search_alpha AS alpha
    FROM documents_collection col
    WHERE (%(full_access)s OR col.is_public OR col.owner_id = %(user_id)s
           OR EXISTS (SELECT 1 FROM documents_collectiongrant g
                      WHERE g.collection_id = col.id
                        AND (g.user_id = %(user_id)s
                             OR g.group_id IN (SELECT ug.group_id FROM auth_user_groups ug
                                               WHERE ug.user_id = %(user_id)s))))
      AND (%(collection_slugs)s::text[] IS NULL OR col.slug = ANY(%(collection_slugs)s::text[]))
)"""

# Each leg's scores min-max normalised to [0, 1] within the leg (score fusion); a leg
# whose scores are all equal gives them all 1.
_NORM = """
    CASE WHEN max(score) OVER () > min(score) OVER ()
         THEN (score - min(score) OVER ()) / (max(score) OVER () - min(score) OVER ())
         ELSE 1.0 END"""

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
kw_ranked AS (
    SELECT id, collection_id, score, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM (
        SELECT c.id, c.collection_id, -(c.bm25 <#> qv.vec) AS score
        FROM documents_chunk c
        JOIN qprune qp ON qp.collection_id = c.collection_id
        JOIN qvec qv ON qv.collection_id = c.collection_id
        WHERE c.search_vector @@ qp.tsq __CHUNK_FILTERS__
        ORDER BY c.bm25 <#> qv.vec, c.id
        LIMIT %(keyword_depth)s
    ) ranked
),
kw AS (SELECT id, collection_id, score, rank, __NORM__ AS norm FROM kw_ranked)""".replace(
    "__NORM__", _NORM
)

# One semantic leg per embedding model in the scope: scores of different models are not
# comparable, so each model ranks its own collections' chunks and the legs meet only in
# the fusion, by rank. __LEG__ is the leg's number; the model name (checked against a
# safe alphabet, documents/embedding/spec.py) and the cast are spliced in as literals so
# the planner can match that model's partial expression index (documents/vector_index.py).
_SEMANTIC_LEG = """
scope_size__LEG__ AS (
    SELECT coalesce(sum(st.chunk_count), 0) AS chunks
    FROM documents_collectiontermstats st
    WHERE st.collection_id IN (SELECT id FROM scope WHERE model = __MODEL__ AND NOT dedicated)
),
sem__LEG__ AS (
    SELECT id, collection_id, 1 - distance AS score,
           row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT * FROM (
            (SELECT c.id, c.collection_id, __CAST__ <=> %(embedding___LEG__)s::__TYPE__ AS distance
             FROM documents_chunk c
             WHERE (SELECT chunks FROM scope_size__LEG__) > %(exact_max_chunks)s
               AND c.collection_id IN (SELECT id FROM scope WHERE model = __MODEL__
                                       AND NOT dedicated)
               AND c.embedding_model = __MODEL__ __CHUNK_FILTERS__
             ORDER BY __CAST__ <=> %(embedding___LEG__)s::__TYPE__
             LIMIT %(semantic_depth)s)
            UNION ALL
            -- "+ 0" keeps the planner off the HNSW index: this branch reads the scope's
            -- chunks through the collection index and ranks them exactly.
            (SELECT c.id, c.collection_id, __CAST__ <=> %(embedding___LEG__)s::__TYPE__ AS distance
             FROM documents_chunk c
             WHERE (SELECT chunks FROM scope_size__LEG__) <= %(exact_max_chunks)s
               AND c.collection_id IN (SELECT id FROM scope WHERE model = __MODEL__
                                       AND NOT dedicated)
               AND c.embedding_model = __MODEL__ __CHUNK_FILTERS__
             ORDER BY (__CAST__ <=> %(embedding___LEG__)s::__TYPE__) + 0, c.id
             LIMIT %(semantic_depth)s)__DEDICATED__
        ) candidates
        ORDER BY distance, id
        LIMIT %(semantic_depth)s
    ) nearest
)"""

# A big collection with an index of its own (documents/vector_index.py): searched apart,
# its id a literal so that the planner matches the partial index; in scope or nothing.
_DEDICATED_BRANCH = """
            UNION ALL
            (SELECT c.id, c.collection_id, __CAST__ <=> %(embedding___LEG__)s::__TYPE__ AS distance
             FROM documents_chunk c
             WHERE EXISTS (SELECT 1 FROM scope WHERE id = __ID__ AND dedicated)
               AND c.collection_id = __ID__
               AND c.embedding_model = __MODEL__ __CHUNK_FILTERS__
             ORDER BY __CAST__ <=> %(embedding___LEG__)s::__TYPE__
             LIMIT %(semantic_depth)s)"""


_EMPTY_KW = (
    "kw AS (SELECT NULL::bigint AS id, NULL::bigint AS collection_id, NULL::float8 AS score,"
    " NULL::bigint AS rank, NULL::float8 AS norm WHERE false)"
)
_EMPTY_QALL = "qall AS (SELECT NULL::bigint AS collection_id, NULL::tsquery AS tsq WHERE false)"
_EMPTY_SEM = (
    "sem AS (SELECT NULL::bigint AS id, NULL::bigint AS collection_id, NULL::float8 AS score,"
    " NULL::bigint AS rank, NULL::float8 AS norm WHERE false)"
)

_FUSION = """
fused AS (
    SELECT coalesce(k.id, s.id) AS id,
           __SCORE__ AS score,
           k.rank AS kw_rank, k.score AS kw_score, k.norm AS kw_norm,
           s.rank AS sem_rank, s.score AS sem_score, s.norm AS sem_norm,
           __ALPHA__ AS alpha
    FROM kw k FULL OUTER JOIN sem s ON s.id = k.id
    LEFT JOIN scope fs ON fs.id = coalesce(k.collection_id, s.collection_id)
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
       p.kw_norm, p.sem_norm, p.alpha,
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


@dataclass(frozen=True)
class SemanticLeg:
    """One model's semantic leg: its vector index (model, dimensions, vector type), and
    the scope's collections of that model that have an index of their own."""

    index: VectorIndex
    dedicated: tuple[int, ...] = ()

    def sql(self, number: int, chunk_filters: str) -> str:
        kind = f"{self.index.kind}({int(self.index.dimensions)})"
        branches = "".join(
            _DEDICATED_BRANCH.replace("__ID__", str(int(collection_id)))
            for collection_id in self.dedicated
        )
        return (
            _SEMANTIC_LEG.replace("__DEDICATED__", branches)
            .replace("__CHUNK_FILTERS__", chunk_filters)
            .replace("__LEG__", str(number))
            .replace("__MODEL__", sql_literal(self.index.model))
            .replace("__CAST__", self.index.cast())
            .replace("__TYPE__", kind)
        )


def scope_models_sql() -> str:
    """The models of the collections the caller may search (same parameters as the
    search), each with its collections that have an index of their own: read in the
    search's transaction, so the legs match what it then reads."""
    return (
        "WITH "
        + _SCOPE
        + """
        SELECT col.embedding_model, col.embedding_backend, col.embedding_location,
               col.embedding_dimensions, col.embedding_query_prefix,
               col.embedding_passage_prefix, col.embedding_max_tokens,
               coalesce(array_agg(col.id ORDER BY col.id) FILTER (WHERE s.dedicated), '{}')
        FROM scope s JOIN documents_collection col ON col.id = s.id
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        ORDER BY 1, 2, 3"""
    )


# The semantic share of score fusion for one chunk: the request's, else its collection's
# (Collection.search_alpha, tuned on that collection's judged queries), else SEARCH_ALPHA.
_ALPHA = "coalesce(%(alpha)s::float8, fs.alpha, %(default_alpha)s::float8)"


def _alpha(mode: str, fusion: str) -> str:
    return _ALPHA if mode == "hybrid" and fusion == "score" else "NULL::float8"


def _score(mode: str, fusion: str, legs: int) -> str:
    rrf_kw = "coalesce(%(keyword_weight)s / (%(rrf_k)s + k.rank), 0)"
    rrf_sem = "coalesce(%(semantic_weight)s / (%(rrf_k)s + s.rank), 0)"
    if mode == "keyword":
        return "k.score"
    if mode == "semantic":
        # One model: its cosine similarity. Several: their ranks, fused (RRF).
        return "s.score" if legs <= 1 else "1.0 / (%(rrf_k)s + s.rank)"
    if fusion == "score":
        return f"{_ALPHA} * coalesce(s.norm, 0) + (1 - {_ALPHA}) * coalesce(k.norm, 0)"
    return f"{rrf_kw} + {rrf_sem}"


def build_search_sql(
    *,
    mode: str,
    chunk_filters: str,
    with_embeddings: bool,
    legs: list[SemanticLeg] | tuple[SemanticLeg, ...] = (),
    fusion: str = "rrf",
) -> str:
    """The statement for ``mode``; ``legs`` are the semantic legs (one per model in the
    scope whose query could be embedded; none: keyword only). Leg ``i`` reads its query
    vector from the parameter ``embedding_i``."""
    ctes = [_SCOPE]
    if mode in ("hybrid", "keyword"):
        ctes.append(_KEYWORD_CTES.replace("__CHUNK_FILTERS__", chunk_filters))
    else:
        ctes.extend([_EMPTY_KW, _EMPTY_QALL])
    if mode in ("hybrid", "semantic") and legs:
        ctes.extend(leg.sql(i, chunk_filters) for i, leg in enumerate(legs))
        ctes.append(
            "sem AS ("
            + " UNION ALL ".join(
                f"SELECT id, collection_id, score, rank, {_NORM} AS norm FROM sem{i}"
                for i in range(len(legs))
            )
            + ")"
        )
    else:
        ctes.append(_EMPTY_SEM)
    score = _score(mode, fusion, len(legs))
    embedding_column = "c.embedding::real[]" if with_embeddings else "NULL"
    return (
        "WITH "
        + ",".join(ctes)
        + ","
        + _FUSION.replace("__SCORE__", score)
        .replace("__ALPHA__", _alpha(mode, fusion))
        .replace("__EMBEDDING__", embedding_column)
    )

"""Drift per collection and day, read from the query log (and the chunks' models):

- **best similarity**: the mean cosine similarity of a query to its best semantic match
  in the collection (the `similarity` the log keeps per result). A slow fall means people
  ask about things the collection covers less well, or the model fits the text less well.
- **absent terms**: the share of query terms (lexemes of the collection's text-search
  language) that no chunk of the collection contains (documents' term frequencies, as
  BM25 uses them). A rise means a vocabulary the documents do not use: add documents, or
  lean on semantic search.
- **other model**: the share of the collection's embedded chunks that another model than
  the collection's made (after a model change, until `reembed` finishes). Above 0,
  semantic scores of the two parts do not compare.

Raw SQL: the figures come from JSON arrays and tsvectors the ORM would only hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from documents.embedding import active_model_name
from documents.models import Chunk

# Per result of a row: its document's collection and its similarity; the best per row
# and collection, then the day's mean.
_SIMILARITY_SQL = """
SELECT collection_id, day, avg(best) AS similarity, count(*) AS queries FROM (
    SELECT l.id, d.collection_id, (l.created AT TIME ZONE %(tz)s)::date AS day,
           max((r.value ->> 'similarity')::float8) AS best
    FROM insights_querylog l
    CROSS JOIN LATERAL jsonb_array_elements(l.results) AS r(value)
    JOIN documents_document d ON d.id = (r.value ->> 'document')::bigint
    WHERE l.created >= %(since)s AND r.value ? 'similarity'
      AND d.collection_id = ANY(%(collections)s)
    GROUP BY l.id, d.collection_id, day
) best GROUP BY collection_id, day
"""
# Each logged query's lexemes in each searched collection's language; absent: no chunk
# of that collection has the lexeme.
_VOCABULARY_SQL = """
WITH terms AS (
    SELECT c.id AS collection_id, (l.created AT TIME ZONE %(tz)s)::date AS day, t.lexeme
    FROM insights_querylog l
    JOIN documents_collection c ON c.id = ANY(l.collection_ids)
    CROSS JOIN LATERAL unnest(tsvector_to_array(
        to_tsvector(c.search_config::regconfig, l.query))) AS t(lexeme)
    WHERE l.created >= %(since)s AND l.query <> '' AND c.id = ANY(%(collections)s)
)
SELECT collection_id, day, count(*) AS terms,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM documents_termdocumentfrequency f
           WHERE f.collection_id = terms.collection_id AND f.lexeme = terms.lexeme
             AND f.df > 0)) AS absent
FROM terms GROUP BY collection_id, day
"""


@dataclass
class DriftDay:
    collection_id: int
    day: date
    similarity: float | None = None  # mean best similarity
    queries: int = 0  # queries with a semantic match
    terms: int = 0
    absent: int = 0

    @property
    def absent_share(self) -> float | None:
        return self.absent / self.terms if self.terms else None


def _rows(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with connections["default"].cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def drift_per_day(*, collection_ids: list[int], since: datetime) -> list[DriftDay]:
    """Similarity and vocabulary figures per collection and day, oldest first."""
    params = {"tz": settings.TIME_ZONE, "since": since, "collections": collection_ids}
    days: dict[tuple[int, date], DriftDay] = {}
    for row in _rows(_SIMILARITY_SQL, params):
        entry = days.setdefault(
            (row["collection_id"], row["day"]), DriftDay(row["collection_id"], row["day"])
        )
        entry.similarity, entry.queries = float(row["similarity"]), int(row["queries"])
    for row in _rows(_VOCABULARY_SQL, params):
        entry = days.setdefault(
            (row["collection_id"], row["day"]), DriftDay(row["collection_id"], row["day"])
        )
        entry.terms, entry.absent = int(row["terms"]), int(row["absent"])
    return sorted(days.values(), key=lambda d: (d.day, d.collection_id))


def other_model_shares(*, collection_ids: list[int] | None = None) -> dict[int, float]:
    """Per collection with embedded chunks: the share another model than its own made
    (a collection that records no model: the active one)."""
    own = Coalesce(NullIf(F("collection__embedding_model"), Value("")), Value(active_model_name()))
    chunks = Chunk.objects.filter(embedding__isnull=False)
    if collection_ids is not None:
        chunks = chunks.filter(collection_id__in=collection_ids)
    return {
        row["collection_id"]: row["other"] / row["total"]
        for row in chunks.values("collection_id").annotate(
            total=Count("id"), other=Count("id", filter=~Q(embedding_model=own))
        )
    }


def drift_recent(*, collection_ids: list[int], hours: int = 24) -> dict[int, DriftDay]:
    """The last `hours` as one figure per collection (the metrics' gauges)."""
    since = timezone.now() - timedelta(hours=hours)
    merged: dict[int, DriftDay] = {}
    for day in drift_per_day(collection_ids=collection_ids, since=since):
        entry = merged.setdefault(day.collection_id, DriftDay(day.collection_id, day.day))
        if day.similarity is not None:
            total = (entry.similarity or 0.0) * entry.queries + day.similarity * day.queries
            entry.queries += day.queries
            entry.similarity = total / entry.queries if entry.queries else None
        entry.terms += day.terms
        entry.absent += day.absent
    return merged


@dataclass(frozen=True)
class DriftRow:
    collection: str
    day: date
    similarity: float | None
    absent_share: float | None


@dataclass(frozen=True)
class Drift:
    rows: list[DriftRow]  # newest day first
    other_model: dict[str, float]  # collection name -> share of chunks, now
    similarity: dict[str, dict[date, float]]  # collection name -> day -> mean similarity


def drift_summary(*, collections: dict[int, str], days: int) -> Drift:
    """The quality page's drift section for these collections (id -> name)."""
    since = timezone.now() - timedelta(days=days)
    found = drift_per_day(collection_ids=list(collections), since=since)
    rows = [
        DriftRow(collections[d.collection_id], d.day, d.similarity, d.absent_share)
        for d in reversed(found)
    ]
    similarity: dict[str, dict[date, float]] = {}
    for d in found:
        if d.similarity is not None:
            similarity.setdefault(collections[d.collection_id], {})[d.day] = d.similarity
    other = {
        collections[pk]: share
        for pk, share in other_model_shares(collection_ids=list(collections)).items()
    }
    return Drift(rows, other, similarity)

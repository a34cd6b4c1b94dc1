"""A big collection's own vector index (issue 19, point 5): built by the sync, used by
the search through a branch with its id, dropped when it shrinks; results unchanged."""

from __future__ import annotations

from typing import Any

from django.db import connection

from documents.models import Collection
from documents.vector_index import existing_indexes, index_for, vector_indexes_sync
from search.retrieval import SearchParams, search, search_similar
from search.retrieval._sql import SemanticLeg, build_search_sql
from search.retrieval.types import Mode

TEXTS = {
    "a.txt": "Mitochondria are the powerhouse of the cell and make ATP.",
    "b.txt": "Glaciers retreat as the climate warms.",
    "c.txt": "The orchestra played a symphony by Mozart.",
}


def _hits(query: str, mode: Mode = "semantic") -> list[tuple[str, float]]:
    response = search(SearchParams(query=query, mode=mode, top_k=5), user=None)
    return [(r.source_name, round(r.score, 5)) for r in response.results]


def test_a_big_collection_gets_its_own_index_and_the_search_uses_it(
    collection: Any, ingest: Any, settings: Any
) -> None:
    collection.is_public = True
    collection.save()
    ingest(collection, TEXTS)
    small = Collection.objects.create(name="small", slug="small", is_public=True)
    ingest(small, {"d.txt": "ATP synthase in the mitochondria."})
    before = {q: _hits(q) for q in ("powerhouse of the cell", "warming climate")}
    hybrid_before = _hits("mitochondria ATP", "hybrid")

    settings.SEARCH_DEDICATED_INDEX_MIN_CHUNKS = 3  # the first collection has 3 chunks
    vector_indexes_sync()
    own = index_for(collection.embedding_model, collection.embedding_dimensions, collection.pk)
    assert existing_indexes().get(own.name) is True
    collection.refresh_from_db()
    small.refresh_from_db()
    assert collection.vector_index_dedicated and not small.vector_index_dedicated

    # Same results through the collection's own branch.
    assert {q: _hits(q) for q in before} == before
    assert _hits("mitochondria ATP", "hybrid") == hybrid_before
    chunk = collection.documents.get(source_name="a.txt").chunks.get()
    similar = search_similar(chunk_id=chunk.pk, embedding=chunk.embedding, top_k=5, user=None)
    assert {r.source_name for r in similar.results} == {"b.txt", "c.txt", "d.txt"}

    # The plan of that branch uses the partial index (sequential scans off: 3 rows).
    leg = SemanticLeg(index_for(collection.embedding_model, 384), (collection.pk,))
    sql = build_search_sql(mode="semantic", chunk_filters="", with_embeddings=False, legs=[leg])
    vector = "[" + ",".join(["0.05"] * 384) + "]"
    params = {
        "full_access": True,
        "user_id": None,
        "collection_slugs": None,
        "exact_max_chunks": 0,
        "semantic_depth": 10,
        "embedding_0": vector,
        "rrf_k": 60.0,
        "keyword_weight": 1.0,
        "semantic_weight": 1.0,
        "alpha": 0.5,
        "min_score": None,
        "group_by_document": False,
        "limit": 10,
        "offset": 0,
        "headline_chars": 1000,
        "query_text": "",
    }
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert own.name in plan, plan

    # Shrinking below half the threshold drops it; the search goes back to the shared one.
    settings.SEARCH_DEDICATED_INDEX_MIN_CHUNKS = 100
    built, dropped = vector_indexes_sync()
    assert own.name in dropped and own.name not in existing_indexes()
    collection.refresh_from_db()
    assert not collection.vector_index_dedicated
    assert {q: _hits(q) for q in before} == before

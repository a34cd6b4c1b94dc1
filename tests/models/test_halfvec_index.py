"""EMBEDDING_INDEX_TYPE=halfvec (issue 19, point 6): the per-model index stores float16,
the search casts the same way and uses it, the float32 index goes once the new one is in."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from documents.vector_index import VectorIndex, existing_indexes, index_for, vector_indexes_sync
from search.retrieval import SearchParams, search
from search.retrieval._sql import SemanticLeg, build_search_sql


def _hits(query: str) -> list[str]:
    response = search(SearchParams(query=query, mode="semantic", top_k=3), user=None)
    return [r.source_name for r in response.results]


def test_halfvec_indexes_replace_vector_ones_and_serve_the_same_results(
    collection: Any, ingest: Any, settings: Any
) -> None:
    collection.is_public = True
    collection.save()
    ingest(
        collection,
        {
            "a.txt": "Mitochondria are the powerhouse of the cell.",
            "b.txt": "Glaciers retreat as the climate warms.",
            "c.txt": "The orchestra played a symphony by Mozart.",
        },
    )
    vector_indexes_sync()
    float32 = index_for(collection.embedding_model, 384)
    assert existing_indexes().get(float32.name) is True
    before = {q: _hits(q) for q in ("powerhouse of the cell", "melting ice", "classical music")}

    settings.EMBEDDING_INDEX_TYPE = "halfvec"
    built, dropped = vector_indexes_sync()
    half = index_for(collection.embedding_model, 384)
    assert half.kind == "halfvec" and half.name in built and float32.name in dropped
    assert {q: _hits(q) for q in before} == before

    sql = build_search_sql(
        mode="semantic", chunk_filters="", with_embeddings=False, legs=[SemanticLeg(half)]
    )
    assert "::halfvec(384)" in sql
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c"
            " ON c.oid = i.indexrelid WHERE c.relname = %s",
            [half.name],
        )
        (definition,) = cursor.fetchone()
    assert "halfvec_cosine_ops" in definition and "(embedding)::halfvec(384)" in definition


def test_an_unknown_index_type_is_a_clear_error(settings: Any) -> None:
    settings.EMBEDDING_INDEX_TYPE = "binary"
    with pytest.raises(ValueError, match="EMBEDDING_INDEX_TYPE='binary': use one of"):
        index_for("m", 384)
    assert VectorIndex("m", 384).kind == "vector"

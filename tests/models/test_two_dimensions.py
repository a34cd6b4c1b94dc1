"""Collections of different models and dimensions in one installation: a 256-dimension
model made locally (the packaged MiniLM + a Dense layer, torch backend) beside the
packaged 384-dimension one, searched together, each leg through its own HNSW index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from documents.models import Chunk, Collection
from documents.reembed import target_spec
from documents.services import collection_create
from documents.vector_index import index_for, vector_indexes_sync
from search.retrieval import SearchParams, search
from tests.helpers.models import minilm_projected

SMALL = {
    "mito.txt": "Mitochondria are the powerhouse of the cell and make its energy.",
    "glacier.txt": "Glaciers retreat in the Alps as summers grow warmer.",
}
PROJECTED = {
    "atp.txt": "The cell makes energy as ATP in its mitochondria.",
    "volcano.txt": "Volcanoes erupt lava and ash over the island.",
}


@pytest.fixture(scope="module")
def model_256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return minilm_projected(tmp_path_factory.mktemp("minilm-256"), dimensions=256)


@pytest.fixture
def two_models(db: None, model_256: Path, ingest: Any) -> tuple[Collection, Collection]:
    small = collection_create(owner=None, name="Small", slug="small", is_public=True)
    spec = target_spec(model="minilm-256", backend="torch", location=str(model_256))
    projected = collection_create(
        owner=None, name="Projected", slug="projected", is_public=True, spec=spec
    )
    ingest(small, SMALL)
    ingest(projected, PROJECTED)
    return small, projected


def test_a_new_collection_records_the_probed_dimensions(
    two_models: tuple[Collection, Collection],
) -> None:
    small, projected = two_models
    assert (small.embedding_model, small.embedding_dimensions) == ("all-MiniLM-L6-v2", 384)
    assert (projected.embedding_backend, projected.embedding_dimensions) == ("torch", 256)
    rows = Chunk.objects.values_list("embedding_model", "embedding")
    dims = {model: len(vector) for model, vector in rows if vector is not None}
    assert dims == {"all-MiniLM-L6-v2": 384, "minilm-256": 256}


def test_one_search_runs_a_leg_per_model_and_finds_in_both(
    two_models: tuple[Collection, Collection],
) -> None:
    answer = APIClient().post(
        "/api/v1/search/", {"query": "cell energy mitochondria", "mode": "semantic"}, "json"
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert sorted(body["models"]) == ["all-MiniLM-L6-v2", "minilm-256"]
    assert body["total"] == 4 and body["notices"] == []
    # Fused by rank: each model's best (the two texts on cells) come first.
    titles = [r["citation"]["source_name"] for r in body["results"][:2]]
    assert sorted(titles) == ["atp.txt", "mito.txt"]


def test_similar_stays_within_the_chunks_model(
    two_models: tuple[Collection, Collection],
) -> None:
    _, projected = two_models
    chunk = Chunk.objects.get(document__collection=projected, document__source_name="atp.txt")
    answer = APIClient().get(f"/api/v1/chunks/{chunk.pk}/similar/")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["models"] == ["minilm-256"]
    assert [r["citation"]["source_name"] for r in body["results"]] == ["volcano.txt"]


def test_each_leg_uses_its_models_index(two_models: tuple[Collection, Collection]) -> None:
    """The planner picks each model's partial expression index for its leg of the real
    search statement (sequential scans off, as on a table too large to scan)."""
    vector_indexes_sync()
    with CaptureQueriesContext(connection) as queries:
        search(SearchParams(query="cell energy", mode="semantic"), user=None)
    statement = next(q["sql"] for q in queries.captured_queries if "<=>" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for model, dimensions in (("all-MiniLM-L6-v2", 384), ("minilm-256", 256)):
        assert index_for(model, dimensions).name in plan, plan

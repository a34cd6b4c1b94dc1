"""A collection on an OpenAI-compatible embeddings server (a real one on loopback):
dimensions probed, ingestion and search through it, prefixes sent, and what happens
while the server is down (documents wait with the reason, hybrid falls back to keywords
with a notice, semantic answers 503, keyword never asks the server)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from documents.models import Chunk, Collection, Document
from documents.services import collection_create
from documents.tasks import process_documents
from tests.helpers.embedding_server import FakeEmbeddingServer

DOCS = {
    "aspirin.txt": "Aspirin lowers the risk of a second heart attack.",
    "glacier.txt": "Glaciers retreat as average temperatures rise.",
}


@pytest.fixture
def server(settings: Any) -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer(dimensions=48) as running:
        settings.EMBEDDING_BACKEND = "openai"
        settings.EMBEDDING_BASE_URL = running.base_url
        settings.EMBEDDING_MODEL_NAME = "fake-bge"
        settings.EMBEDDING_DIMENSIONS = 0  # asked of the server
        settings.EMBEDDING_QUERY_PREFIX = "query: "
        settings.EMBEDDING_PASSAGE_PREFIX = "passage: "
        settings.EMBEDDING_RETRIES = 1
        settings.EMBEDDING_RETRY_BACKOFF_SECONDS = 0.01
        settings.EMBEDDING_TIMEOUT_SECONDS = 2.0
        settings.EMBEDDING_QUERY_TIMEOUT_SECONDS = 2.0
        yield running


@pytest.fixture
def served(db: None, server: FakeEmbeddingServer, ingest: Any) -> Collection:
    collection = collection_create(owner=None, name="Served", slug="served", is_public=True)
    ingest(collection, DOCS)
    return collection


def post_search(query: str, mode: str) -> Any:
    return APIClient().post("/api/v1/search/", {"query": query, "mode": mode}, format="json")


def test_a_collection_on_a_server_model_ingests_and_searches_with_prefixes(
    served: Collection, server: FakeEmbeddingServer
) -> None:
    assert (served.embedding_backend, served.embedding_model) == ("openai", "fake-bge")
    assert served.embedding_dimensions == 48  # probed
    assert set(Document.objects.values_list("status", flat=True)) == {"ready"}
    assert {len(v) for v in Chunk.objects.values_list("embedding", flat=True) if v is not None} == {
        48
    }
    passages = [text for request in server.inputs[1:] for text in request]
    assert passages and all(text.startswith("passage: ") for text in passages)
    before = len(server.requests)
    answer = post_search("second heart attack", "semantic")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["models"] == ["fake-bge"]
    assert body["results"][0]["citation"]["source_name"] == "aspirin.txt"
    assert server.inputs[before:] == [["query: second heart attack"]]


def test_the_server_down(served: Collection, server: FakeEmbeddingServer, ingest: Any) -> None:
    server.go_down()
    semantic = post_search("glaciers temperatures", "semantic")
    assert semantic.status_code == 503
    assert "semantic search is unavailable: fake-bge" in semantic.json()["detail"]
    hybrid = post_search("glaciers temperatures", "hybrid")
    assert hybrid.status_code == 200, hybrid.content
    body = hybrid.json()
    assert [r["citation"]["source_name"] for r in body["results"]] == ["glacier.txt"]
    assert len(body["notices"]) == 1 and "keyword results only" in body["notices"][0]
    # The page: a message, not a 500.
    page = APIClient().get("/", {"q": "glaciers temperatures", "mode": "semantic"})
    assert page.status_code == 200 and "Semantic search is unavailable" in page.content.decode()
    page = APIClient().get("/", {"q": "glaciers temperatures", "mode": "hybrid"})
    assert "retreat as average temperatures" in page.content.decode()
    assert "keyword results only" in page.content.decode()

    [document] = ingest(served, {"new.txt": "Volcanoes erupt lava over the island."})
    assert document.status == Document.Status.PENDING  # retried later, with the reason
    assert document.retry_at is not None
    assert f"embedding server {server.base_url} unreachable" in document.error
    shown = APIClient().get(f"/api/v1/documents/{document.pk}/").json()
    assert shown["status"] == "pending" and shown["error"] == document.error

    server.come_up()
    Document.objects.filter(pk=document.pk).update(retry_at=timezone.now() - timedelta(seconds=1))
    process_documents([document.pk])  # what the retry's schedule runs
    document.refresh_from_db()
    assert (document.status, document.error) == (Document.Status.READY, "")
    assert (
        post_search("volcanoes lava", "semantic").json()["results"][0]["citation"]["source_name"]
        == "new.txt"
    )


def test_keyword_search_never_asks_the_server(
    served: Collection, server: FakeEmbeddingServer
) -> None:
    before = len(server.requests)
    server.go_down()
    answer = post_search("aspirin", "keyword")
    assert answer.status_code == 200 and answer.json()["notices"] == []
    assert len(answer.json()["results"]) == 1
    assert len(server.requests) == before

"""A collection's model change through its three interfaces (`manage.py reembed`, the
API, the admin action), a new collection's model through the API, and the search API's
fusion and model fields."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from documents.models import Chunk, Collection, CollectionGrant
from documents.reembed import collection_reembed_start, target_spec
from tests.factories import CollectionFactory, UserFactory

DOCS = {
    "a.txt": "Mitochondria are the powerhouse of the cell.",
    "b.txt": "Glaciers retreat as the climate warms.",
    "c.txt": "The cell membrane keeps the cell together.",
}


def reembed_url(collection: Collection) -> str:
    return f"/api/v1/collections/{collection.slug}/reembed/"


# The command builds the model's vector index: outside a transaction, as it runs.
@pytest.mark.django_db(transaction=True)
def test_the_command_stages_in_groups_with_progress_and_switches(
    collection: Any, ingest: Any
) -> None:
    ingest(collection, DOCS)
    out = StringIO()
    call_command(
        "reembed",
        collection=collection.slug,
        model="minilm-b",
        dimensions=384,
        query_prefix="query: ",
        group_size=2,
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    assert "staged 2/3" in lines and "staged 3/3" in lines
    collection.refresh_from_db()
    assert (collection.embedding_model, collection.embedding_query_prefix) == (
        "minilm-b",
        "query: ",
    )
    assert collection.reembed_target is None
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"minilm-b"}
    status = StringIO()
    call_command("reembed", collection=collection.slug, status=True, stdout=status)
    assert "minilm-b (384 dimensions); no model change in progress" in status.getvalue()


# The command builds the model's vector index: outside a transaction, as it runs.
@pytest.mark.django_db(transaction=True)
def test_the_command_resumes_a_started_change_and_reports_a_bad_spec(
    collection: Any, ingest: Any
) -> None:
    ingest(collection, DOCS)
    # A run killed after staging one document: its staged rows are kept.
    from documents.reembed import reembed_missing, reembed_stage

    spec = target_spec(model="minilm-b", dimensions=384)
    collection_reembed_start(collection=collection, spec=spec, enqueue=False)
    reembed_stage(collection_id=collection.pk, document_ids=reembed_missing(collection)[:1])
    status = StringIO()
    call_command("reembed", collection=collection.slug, status=True, stdout=status)
    assert "-> minilm-b: staged 1/3" in status.getvalue()
    out = StringIO()
    call_command(
        "reembed", collection=collection.slug, model="minilm-b", dimensions=384, stdout=out
    )
    assert "staged 3/3" in out.getvalue()  # the two left, the first not again
    assert Collection.objects.get(pk=collection.pk).embedding_model == "minilm-b"

    with pytest.raises(CommandError, match="model name 'no spaces please'"):
        call_command("reembed", collection=collection.slug, model="no spaces please")
    with pytest.raises(CommandError, match="already uses model 'minilm-b'"):
        call_command("reembed", collection=collection.slug, model="minilm-b", dimensions=384)
    with pytest.raises(CommandError, match="cannot load embedding model from /nope"):
        call_command(
            "reembed", collection=collection.slug, model="x", backend="torch", location="/nope"
        )
    with pytest.raises(CommandError, match="no collection 'missing'"):
        call_command("reembed", collection="missing", model="x")


def test_the_command_without_a_model_queues_documents_as_before(
    collection: Any, ingest: Any
) -> None:
    ingest(collection, DOCS)
    out = StringIO()
    call_command("reembed", collection=collection.slug, stdout=out)
    assert out.getvalue().strip() == "queued 3 document(s) for re-embedding"


def test_the_api_starts_follows_and_cancels_a_change(
    collection: Any, ingest: Any, user_client: APIClient
) -> None:
    ingest(collection, DOCS)
    url = reembed_url(collection)
    answer = user_client.post(url, {"model": "minilm-b", "dimensions": 384}, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json() | {"embedding": None} == {
        "staged": 0,
        "total": 3,
        "target": "minilm-b",
        "error": "",
        "done": False,
        "embedding": None,
    }
    assert answer.json()["embedding"]["model"] == "all-MiniLM-L6-v2"
    assert user_client.get(url).json()["target"] == "minilm-b"
    cancelled = user_client.delete(url)
    assert cancelled.status_code == 200 and cancelled.json()["done"] is True
    assert Collection.objects.get(pk=collection.pk).reembed_target is None


def test_the_api_refuses_bad_specs_and_callers_that_may_not_write(
    collection: Any, user_client: APIClient
) -> None:
    url = reembed_url(collection)
    bad = user_client.post(url, {"model": "no spaces"}, format="json")
    assert bad.status_code == 400 and "use letters, digits" in bad.json()["errors"]["model"][0]
    same = user_client.post(url, {"model": "all-MiniLM-L6-v2", "dimensions": 384}, format="json")
    assert same.status_code == 400 and "already uses" in same.json()["errors"]["model"][0]
    other: Any = CollectionFactory.create(slug="other")
    Collection.objects.filter(pk=other.pk).update(embedding_model="m256", embedding_dimensions=256)
    clash = user_client.post(url, {"model": "m256", "dimensions": 384}, format="json")
    assert (
        clash.status_code == 400
        and "used by collection 'other'" in clash.json()["errors"]["model"][0]
    )
    # A location is a folder on the server or a URL it would send every text to.
    located = user_client.post(url, {"model": "x", "location": "/tmp"}, format="json")
    assert located.status_code == 403

    reader: Any = UserFactory.create()
    CollectionGrant.objects.create(collection=collection, user=reader, permission="read")
    client = APIClient()
    client.force_authenticate(reader)
    assert client.get(url).status_code == 200
    assert client.post(url, {"model": "x", "dimensions": 384}, format="json").status_code == 403
    assert client.delete(url).status_code == 403
    assert APIClient().get(url).status_code == 404  # private: not even its existence


def test_a_collection_is_created_with_a_model_and_shows_it(user_client: APIClient) -> None:
    body = {
        "name": "E5",
        "slug": "e5",
        "embedding": {"model": "minilm-e5", "dimensions": 384, "query_prefix": "query: "},
    }
    created = user_client.post("/api/v1/collections/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["embedding"] == {
        "model": "minilm-e5",
        "backend": "onnx",
        "dimensions": 384,
        "query_prefix": "query: ",
        "passage_prefix": "",
        "max_tokens": 256,
    }
    plain = user_client.post("/api/v1/collections/", {"name": "P", "slug": "p"}, format="json")
    assert plain.json()["embedding"]["model"] == "all-MiniLM-L6-v2"
    changed = user_client.patch("/api/v1/collections/e5/", {"embedding": {"model": "y"}}, "json")
    assert changed.status_code == 400 and "reembed" in changed.json()["errors"]["embedding"][0]
    located = {"name": "L", "slug": "l", "embedding": {"model": "z", "location": "/tmp"}}
    assert user_client.post("/api/v1/collections/", located, format="json").status_code == 403


def test_a_model_folder_that_does_not_exist_is_a_clear_error(
    settings: Any, user_client: APIClient, staff_user: Any
) -> None:
    """EMBEDDING_MODEL_PATH=/nope: a served process is not ready (the reason in /readyz),
    and creating a collection (API, admin) says why instead of a 500."""
    from documents import embedding

    settings.EMBEDDING_BACKEND = "torch"
    settings.EMBEDDING_MODEL_PATH = "/nope"
    settings.EMBEDDING_DIMENSIONS = 0
    saved = dict(embedding._preload)
    try:
        embedding.preload(background=False)
        ready = Client().get("/readyz")
        assert ready.status_code == 503
        assert "cannot load embedding model from /nope" in ready.json()["status"]
    finally:
        embedding._preload.update(saved)
    answer = user_client.post("/api/v1/collections/", {"name": "N", "slug": "n"}, format="json")
    assert answer.status_code == 400
    assert "cannot load embedding model from /nope" in answer.json()["errors"]["embedding"][0]
    client = Client()
    client.force_login(staff_user)
    page = client.post(
        "/admin/documents/collection/add/",
        {"name": "N", "slug": "n", "search_config": "english", "is_public": ""},
        follow=True,
    )
    assert page.status_code == 200
    assert "cannot load embedding model from /nope" in page.content.decode()
    assert not Collection.objects.filter(slug="n").exists()


def test_the_admin_action_starts_a_change_and_the_list_shows_progress(
    collection: Any, ingest: Any, staff_user: Any
) -> None:
    ingest(collection, DOCS)
    client = Client()
    client.force_login(staff_user)
    url = "/admin/documents/collection/"
    chosen = {"action": "change_embedding_model", "_selected_action": [collection.pk]}
    form = client.post(url, chosen)
    assert form.status_code == 200 and b"Change the embedding model" in form.content
    bad = client.post(url, {**chosen, "apply": "1", "model": "bad name"})
    assert bad.status_code == 200 and b"use letters, digits" in bad.content
    started = client.post(
        url, {**chosen, "apply": "1", "model": "minilm-b", "dimensions": "384"}, follow=True
    )
    assert "moving to minilm-b (384 dimensions); 3 documents to stage" in started.content.decode()
    collection.refresh_from_db()
    assert collection.reembed_target["name"] == "minilm-b"
    listing = client.get(url).content.decode()
    assert "to minilm-b: staged 0/3" in listing and "all-MiniLM-L6-v2 (384, onnx)" in listing
    change = client.get(f"{url}{collection.pk}/change/").content.decode()
    assert "to minilm-b: staged 0/3" in change


def test_search_takes_fusion_and_alpha_and_says_which_models_served(
    public_collection: Any, ingest: Any
) -> None:
    ingest(public_collection, DOCS)
    client = APIClient()
    body = {"query": "cell powerhouse", "fusion": "score", "alpha": 1.0}
    semantic_only = client.post("/api/v1/search/", body, format="json")
    assert semantic_only.status_code == 200, semantic_only.content
    data = semantic_only.json()
    assert data["models"] == ["all-MiniLM-L6-v2"] and data["notices"] == []
    # alpha 1: the order is the semantic leg's.
    ranks = [r["semantic_rank"] for r in data["results"]]
    assert ranks == sorted(ranks)
    bad = client.post("/api/v1/search/", {"query": "x", "fusion": "max", "alpha": 2}, "json")
    assert bad.status_code == 400 and set(bad.json()["errors"]) == {"fusion", "alpha"}
    keyword = client.get("/api/v1/search/", {"query": "cell", "mode": "keyword"}).json()
    assert keyword["models"] == []

"""Per-collection access, proved from both sides on every endpoint, mode, filter and top_k.

The world: `priv` (private, owned by `owner`) holds the best matches for every query
used here; `pub` (public, someone else's) holds many weaker ones. `reader` reads priv
through a group grant, `writer` holds a direct write grant, `stranger` is signed in
with no grant, `anon` is anonymous, `root` is a superuser.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from documents.models import Chunk, CollectionGrant, Document
from tests.factories import CollectionFactory, UserFactory

SECRET = {
    f"secret-{i}.txt": f"Volcano eruption report {i}: magma chamber pressure and lava flow."
    for i in range(3)
}
# Enough readable chunks that a full top_k can be served from pub alone.
PUBLIC = {
    f"public-{i}.txt": f"Note {i} on geology: rocks, soil, erosion and an old volcano {i}."
    for i in range(12)
}
QUERY = "volcano magma lava eruption"


@pytest.fixture
def world(db: None, ingest: Any) -> dict[str, Any]:
    owner, reader, writer, stranger = (UserFactory.create() for _ in range(4))
    root = UserFactory.create(is_superuser=True, is_staff=True)
    readers = Group.objects.create(name="readers")
    reader.groups.add(readers)
    priv = CollectionFactory.create(slug="priv", owner=owner)
    pub = CollectionFactory.create(slug="pub", is_public=True, owner=UserFactory.create())
    CollectionGrant.objects.create(collection=priv, group=readers, permission="read")
    CollectionGrant.objects.create(collection=priv, user=writer, permission="write")
    secret_docs = ingest(priv, SECRET, metadata={"topic": "volcano"})
    ingest(pub, PUBLIC, metadata={"topic": "volcano"})
    return {
        "owner": owner,
        "reader": reader,
        "writer": writer,
        "stranger": stranger,
        "root": root,
        "anon": None,
        "priv": priv,
        "pub": pub,
        "secret": secret_docs[0],
        "secret_docs": secret_docs,
        "secret_chunk": Chunk.objects.filter(document=secret_docs[0]).first(),
        "public_chunk": Chunk.objects.filter(collection=pub).first(),
    }


def client_for(world: dict[str, Any], who: str) -> APIClient:
    client = APIClient()
    if world[who] is not None:
        client.force_authenticate(world[who])
    return client


def search(client: APIClient, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/search/", {"query": QUERY, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def collections_of(body: dict[str, Any]) -> list[str]:
    return [r["citation"]["collection"] for r in body["results"]]


CANNOT_READ = ["anon", "stranger"]
CAN_READ = ["owner", "reader", "writer", "root"]
FILTERS: list[dict[str, Any]] = [
    {},
    {"collections": ["priv", "pub"]},
    {"metadata": {"topic": "volcano"}},
    {"metadata_any": {"topic": ["volcano", "x"]}},
    {"mime_types": ["text/plain"]},
    {"created_after": "2000-01-01T00:00:00Z"},
]


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
@pytest.mark.parametrize("top_k", [1, 5, 12])
def test_outsiders_get_a_full_top_k_from_what_they_may_read(
    world: dict[str, Any], mode: str, top_k: int
) -> None:
    for who in CANNOT_READ:
        for filters in FILTERS:
            body = search(client_for(world, who), mode=mode, top_k=top_k, filters=filters)
            assert collections_of(body) == ["pub"] * top_k, (who, filters)
            assert body["total"] == len(PUBLIC)
    for options in ({"mmr_lambda": 0.5}, {"neighbors": 1}, {"group_by_document": True}):
        body = search(client_for(world, "stranger"), mode=mode, top_k=top_k, **options)
        assert collections_of(body) == ["pub"] * top_k, options
        for result in body["results"]:
            for neighbour in result.get("neighbors") or []:
                assert not Chunk.objects.filter(pk=neighbour["chunk_id"], collection=world["priv"])


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_readers_get_the_private_matches_first(world: dict[str, Any], mode: str) -> None:
    for who in CAN_READ:
        body = search(client_for(world, who), mode=mode, top_k=5)
        assert collections_of(body)[:3] == ["priv"] * 3, who
        assert body["total"] == len(PUBLIC) + len(SECRET)


def test_naming_a_hidden_collection_or_document_finds_nothing(world: dict[str, Any]) -> None:
    secret_ids = [d.pk for d in world["secret_docs"]]
    for who in CANNOT_READ:
        client = client_for(world, who)
        for filters in ({"collections": ["priv"]}, {"documents": secret_ids}):
            body = search(client, filters=filters)
            assert body["results"] == [] and body["total"] == 0
    body = search(client_for(world, "reader"), filters={"documents": secret_ids})
    assert set(collections_of(body)) == {"priv"}


def test_chunk_endpoints(world: dict[str, Any]) -> None:
    secret, public = world["secret_chunk"], world["public_chunk"]
    for who in CANNOT_READ:
        client = client_for(world, who)
        assert client.get(f"/api/v1/chunks/{secret.pk}/").status_code == 404
        assert client.get(f"/api/v1/chunks/{secret.pk}/similar/").status_code == 404
        similar = client.get(f"/api/v1/chunks/{public.pk}/similar/", {"top_k": 5}).json()
        assert collections_of(similar) == ["pub"] * 5
    for who in CAN_READ:
        client = client_for(world, who)
        assert client.get(f"/api/v1/chunks/{secret.pk}/").status_code == 200
        similar = client.get(f"/api/v1/chunks/{secret.pk}/similar/", {"top_k": 5}).json()
        assert "priv" in collections_of(similar)


def test_document_reads(world: dict[str, Any]) -> None:
    secret = world["secret"]
    for who in CANNOT_READ:
        client = client_for(world, who)
        listed = client.get("/api/v1/documents/", {"limit": 100}).json()
        assert {d["collection"] for d in listed["results"]} == {"pub"}
        assert client.get(f"/api/v1/documents/{secret.pk}/").status_code == 404
        assert client.get(f"/api/v1/documents/{secret.pk}/original/").status_code == 404
    for who in CAN_READ:
        client = client_for(world, who)
        assert client.get(f"/api/v1/documents/{secret.pk}/").status_code == 200
        original = client.get(f"/api/v1/documents/{secret.pk}/original/")
        assert original.status_code == 200
        assert original.getvalue().startswith(b"Volcano eruption report")


WRITES = [
    ("patch", "/api/v1/documents/{pk}/", {"title": "changed"}, 200),
    ("put", "/api/v1/documents/{pk}/content/", {"text": "New volcano text."}, 202),
    ("post", "/api/v1/documents/{pk}/reembed/", None, 202),
    ("post", "/api/v1/documents/{pk}/retry/", None, 202),
    ("delete", "/api/v1/documents/{pk}/", None, 204),
]


@pytest.mark.parametrize(("method", "url", "data", "ok"), WRITES)
def test_document_writes(world: dict[str, Any], method: str, url: str, data: Any, ok: int) -> None:
    secret = world["secret"]
    if "retry" in url:
        Document.objects.filter(pk=secret.pk).update(status="failed", error="boom")
    path = url.format(pk=secret.pk)
    # Anonymous writers are stopped before any lookup (401 for every id, so no leak).
    expected = {"anon": 401, "stranger": 404, "reader": 403}
    for who, status in expected.items():
        response = getattr(client_for(world, who), method)(path, data, format="json")
        assert response.status_code == status, (who, response.content)
    assert Document.objects.filter(pk=secret.pk, title=secret.title).exists()
    response = getattr(client_for(world, "writer"), method)(path, data, format="json")
    assert response.status_code == ok, response.content


def test_uploads_need_write(world: dict[str, Any]) -> None:
    def upload(who: str, text: str) -> Any:
        return client_for(world, who).post(
            "/api/v1/documents/", {"collection": "priv", "text": text}, format="json"
        )

    hidden = upload("stranger", "a")
    assert hidden.status_code == 400 and "collection" in hidden.json()["detail"]
    assert upload("anon", "a").status_code in (401, 403)
    refused = upload("reader", "b")
    assert refused.status_code == 403 and "not add" in refused.json()["detail"]
    assert upload("writer", "c").status_code == 202
    assert upload("owner", "d").status_code == 202
    assert Document.objects.filter(collection=world["priv"]).count() == len(SECRET) + 2


def test_collection_endpoints(world: dict[str, Any]) -> None:
    for who in CANNOT_READ:
        client = client_for(world, who)
        slugs = {c["slug"] for c in client.get("/api/v1/collections/").json()["results"]}
        assert slugs == {"pub"}
        assert client.get("/api/v1/collections/priv/").status_code == 404
        assert client.patch("/api/v1/collections/priv/", {"name": "x"}).status_code in (
            401,
            403,
            404,
        )
    for who in ("reader", "writer"):
        client = client_for(world, who)
        assert client.get("/api/v1/collections/priv/").status_code == 200
        assert client.patch("/api/v1/collections/priv/", {"name": "x"}).status_code == 403
        assert client.delete("/api/v1/collections/priv/").status_code == 403
        assert client.get("/api/v1/collections/priv/grants/").status_code == 403
    owner = client_for(world, "owner")
    assert owner.patch("/api/v1/collections/priv/", {"name": "Renamed"}).status_code == 200
    assert client_for(world, "stranger").delete("/api/v1/collections/pub/").status_code == 403


def test_the_owner_manages_grants(world: dict[str, Any]) -> None:
    owner, stranger = client_for(world, "owner"), client_for(world, "stranger")
    url = "/api/v1/collections/priv/grants/"
    listed = owner.get(url).json()
    assert {(g["user"], g["group"], g["permission"]) for g in listed} == {
        (None, "readers", "read"),
        (world["writer"].username, None, "write"),
    }
    assert stranger.get(url).status_code == 404
    created = owner.post(url, {"user": world["stranger"].username}, format="json")
    assert created.status_code == 201 and created.json()["permission"] == "read"
    assert stranger.get("/api/v1/collections/priv/").status_code == 200
    assert collections_of(search(stranger, top_k=3)) == ["priv"] * 3
    # Posting again changes the permission instead of adding a second grant.
    upgraded = owner.post(
        url, {"user": world["stranger"].username, "permission": "write"}, format="json"
    )
    assert upgraded.status_code == 200 and upgraded.json()["id"] == created.json()["id"]
    for bad, message in (
        ({}, "user: name either a user or a group"),
        ({"user": "nobody"}, "user:"),
        ({"user": world["reader"].username, "group": "readers"}, "user: name either"),
        ({"group": "readers", "permission": "admin"}, "permission:"),
    ):
        response = owner.post(url, bad, format="json")
        assert response.status_code == 400 and response.json()["detail"].startswith(message)
    revoked = owner.delete(f"{url}{created.json()['id']}/")
    assert revoked.status_code == 204
    assert stranger.get("/api/v1/collections/priv/").status_code == 404
    assert collections_of(search(stranger, top_k=3)) == ["pub"] * 3
    assert owner.delete(f"{url}{created.json()['id']}/").status_code == 404


def test_grants_follow_group_membership(world: dict[str, Any]) -> None:
    stranger = client_for(world, "stranger")
    assert stranger.get(f"/api/v1/documents/{world['secret'].pk}/").status_code == 404
    world["stranger"].groups.add(Group.objects.get(name="readers"))
    assert stranger.get(f"/api/v1/documents/{world['secret'].pk}/").status_code == 200
    assert "priv" in collections_of(search(stranger))


def test_pages_hide_what_the_caller_may_not_read(world: dict[str, Any], client: Any) -> None:
    secret = world["secret"]
    client.force_login(world["stranger"])
    page = client.get("/", {"q": QUERY}).content.decode()
    # Results show titles, taken from the text ("Volcano eruption report 0: ..."), and
    # only the secret documents hold "eruption report".
    assert "eruption report" not in page and 'value="priv"' not in page
    assert client.get(f"/documents/{secret.pk}/").status_code == 404
    assert client.get(f"/documents/{secret.pk}/original/").status_code == 404
    client.force_login(world["reader"])
    page = client.get("/", {"q": QUERY}).content.decode()
    assert "eruption report" in page
    assert client.get(f"/documents/{secret.pk}/").status_code == 200


def test_the_evaluate_command_reads_with_full_access(world: dict[str, Any], tmp_path: Any) -> None:
    """Management commands act with full access (documented in the README)."""
    from django.core.management import call_command

    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q1", "text": QUERY}) + "\n")
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tsecret-0.txt\t1\n")
    output = tmp_path / "out.json"
    call_command(
        "evaluate",
        collection="priv",
        queries=queries,
        qrels=qrels,
        output=output,
        modes="keyword",
    )
    assert json.loads(output.read_text())["keyword"]["recall@10"] == 1.0

"""The search REST API, chunk detail and similar chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from documents.models import Chunk
from tests.factories import CollectionFactory


@pytest.fixture
def corpus(db: None, ingest: Any, user: Any) -> Any:
    public = CollectionFactory.create(slug="pub", is_public=True)
    private = CollectionFactory.create(slug="priv", owner=user)
    ingest(
        public,
        {
            "volcano.txt": "Volcanoes erupt lava and ash. Magma rises through the crust.",
            "ocean.txt": "Oceans cover most of the Earth and hold salt water.",
        },
    )
    ingest(private, {"secret.txt": "Volcano monitoring budget for the private lab."})
    return public


def test_post_search_returns_results_with_citations(anon_client: APIClient, corpus: Any) -> None:
    response = anon_client.post("/api/v1/search/", {"query": "volcano lava"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["mode"] == "hybrid" and body["total"] >= 1
    first = body["results"][0]
    assert first["citation"]["source_name"] == "volcano.txt"
    assert first["citation"]["collection"] == "pub"
    assert "<mark>" in first["snippet"]
    assert first["keyword_rank"] == 1 and first["semantic_rank"] == 1
    assert {"embedding_ms", "sql_ms", "total_ms"} <= set(body["timing"])
    # Anonymous callers never see the private collection.
    assert all(r["citation"]["collection"] == "pub" for r in body["results"])


def test_score_fusion_results_say_how_they_were_weighed(
    user_client: APIClient, corpus: Any
) -> None:
    """The collection's own alpha (set through the collections API, owner only) weighs
    its results unless the request gives one; each result says which it got."""
    private = "/api/v1/collections/priv/"
    assert user_client.patch(private, {"search_alpha": 1.5}, format="json").status_code == 400
    saved = user_client.patch(private, {"search_alpha": 0.3}, format="json")
    assert saved.status_code == 200 and saved.json()["search_alpha"] == 0.3
    search_url = "/api/v1/search/"
    body = user_client.post(search_url, {"query": "volcano lava"}, format="json").json()
    alphas = {r["citation"]["collection"]: r["alpha"] for r in body["results"]}
    assert alphas == {"pub": 0.6, "priv": 0.3}
    for result in body["results"]:
        alpha = result["alpha"]
        assert result["score"] == pytest.approx(
            alpha * result["semantic_norm"] + (1 - alpha) * result["keyword_norm"]
        )
    given = {"query": "volcano lava", "alpha": 0.9}
    body = user_client.post(search_url, given, format="json").json()
    assert {r["alpha"] for r in body["results"]} == {0.9}
    # Clearing it falls back to the default.
    assert user_client.patch(private, {"search_alpha": None}, format="json").status_code == 200
    body = user_client.post(search_url, {"query": "volcano lava"}, format="json").json()
    assert {r["alpha"] for r in body["results"]} == {0.6}


def test_get_search_with_query_parameters(user_client: APIClient, corpus: Any) -> None:
    filters = json.dumps({"collections": ["priv"]})
    response = user_client.get(
        "/api/v1/search/", {"query": "volcano", "mode": "keyword", "filters": filters}
    )
    assert response.status_code == 200, response.content
    assert [r["citation"]["source_name"] for r in response.json()["results"]] == ["secret.txt"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": "x" * 1001}, "query"),
        ({"query": "x", "mode": "fuzzy"}, "mode"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 101}, "top_k"),
        ({"query": "x", "filters": {"colour": ["red"]}}, "filters"),
        ({"query": "x", "filters": "not json"}, "filters"),
        ({"query": "-only"}, "query"),
        ({"query": "x", "mmr_lambda": 2}, "mmr_lambda"),
        ({"query": "x", "alpha": 1.5}, "alpha"),
    ],
)
def test_bad_requests_name_the_field(
    anon_client: APIClient, corpus: Any, payload: dict, field: str
) -> None:
    response = anon_client.post("/api/v1/search/", payload, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(field), response.json()


def test_chunk_detail_with_neighbours_and_access(
    anon_client: APIClient, user_client: APIClient, corpus: Any
) -> None:
    chunk = Chunk.objects.get(document__source_name="volcano.txt")
    body = anon_client.get(f"/api/v1/chunks/{chunk.pk}/").json()
    assert body["text"] == chunk.text and body["citation"]["char_end"] == chunk.char_end
    assert body["previous"] is None and body["next"] is None
    secret = Chunk.objects.get(document__source_name="secret.txt")
    assert anon_client.get(f"/api/v1/chunks/{secret.pk}/").status_code == 404
    assert user_client.get(f"/api/v1/chunks/{secret.pk}/").status_code == 200


def test_similar_chunks_exclude_self_and_unreadable(
    anon_client: APIClient, user_client: APIClient, corpus: Any
) -> None:
    chunk = Chunk.objects.get(document__source_name="volcano.txt")
    anonymous = anon_client.get(f"/api/v1/chunks/{chunk.pk}/similar/?top_k=5").json()
    names = [r["citation"]["source_name"] for r in anonymous["results"]]
    assert names == ["ocean.txt"]
    signed_in = user_client.get(f"/api/v1/chunks/{chunk.pk}/similar/").json()
    assert [r["citation"]["source_name"] for r in signed_in["results"]][0] == "secret.txt"


def test_schema_documents_search_endpoints(anon_client: APIClient, db: None) -> None:
    schema = anon_client.get("/api/v1/schema/?format=json").json()
    for path in ["/api/v1/search/", "/api/v1/chunks/{id}/", "/api/v1/chunks/{id}/similar/"]:
        assert path in schema["paths"]
    assert "400" in schema["paths"]["/api/v1/search/"]["post"]["responses"]


@pytest.mark.parametrize("query", ["the of and", "?!*** ..."])
def test_stop_words_or_symbols_answer_200_with_an_empty_keyword_leg(
    anon_client: APIClient, corpus: Any, query: str
) -> None:
    response = anon_client.post("/api/v1/search/", {"query": query}, format="json")
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert results and all(r["keyword_rank"] is None for r in results)


@pytest.mark.parametrize("url", ["/api/v1/search/", "/api/v1/context/"])
def test_a_query_with_only_exclusions_names_the_query_field(
    anon_client: APIClient, corpus: Any, url: str
) -> None:
    response = anon_client.post(url, {"query": '-volcano -"salt water"'}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"] == "query: needs at least one word to search for"
    assert body["errors"] == {"query": ["needs at least one word to search for"]}

"""Reranking through a real TEI-style /rerank server on loopback (tests/helpers/rerank_server.py):
the order it gives, the explanation fields, the depth, the request's limits, failures that
leave the fused order with a notice, /context/, /ask/, the page and `evaluate --rerank`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import CollectionFactory
from tests.helpers.llm_server import FakeLLM
from tests.helpers.rerank_server import FakeReranker, down_url, overlap

QUERY = "volcano lava"
FILES = {
    "observatory.txt": "Volcano eruptions pour lava down the slopes; the volcano observatory "
    "tracks lava flows, ash clouds and gas.",
    "iceland.txt": "Volcanoes and lava fields of Iceland attract hikers every summer to walk "
    "the cooled basalt.",
    "note.txt": "Lava lava lava.",
    "ocean.txt": "Oceans cover most of the Earth and hold salt water.",
    "forest.txt": "Trees in old forests store carbon for centuries.",
}


@pytest.fixture
def corpus(db: None, ingest: Any) -> Any:
    collection = CollectionFactory.create(slug="pub", is_public=True)
    ingest(collection, FILES)
    return collection


@pytest.fixture
def server(settings: Any) -> Iterator[FakeReranker]:
    with FakeReranker() as fake:
        settings.RERANK_BACKEND = "http"
        settings.RERANK_BASE_URL = fake.base_url
        settings.RERANK_MODEL = ""
        settings.RERANK_API_KEY = ""
        yield fake


def search(client: APIClient, **payload: Any) -> dict[str, Any]:
    response = client.post("/api/v1/search/", {"query": QUERY, **payload}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [r["citation"]["source_name"] for r in body["results"]]


def test_the_reranker_orders_the_results_and_explains_itself(
    anon_client: APIClient, corpus: Any, server: FakeReranker
) -> None:
    fused = search(anon_client)
    assert fused["reranker"] is None and fused["notices"] == []
    assert all(r["rerank_score"] is None for r in fused["results"])
    reranked = search(anon_client, rerank=True)
    # The query log says which searches were reranked.
    from insights.models import QueryLog

    assert list(QueryLog.objects.order_by("pk").values_list("reranked", flat=True)) == [
        False,
        True,
    ]
    # The server's score is word overlap: the order it implies, ties in fused order.
    expected = sorted(fused["results"], key=lambda r: -overlap(QUERY, r["text"]))
    assert names(reranked) == [r["citation"]["source_name"] for r in expected]
    assert names(reranked) != names(fused)  # the corpus is built so that they differ
    assert names(reranked)[0] == "note.txt"
    fused_rank = {r["chunk_id"]: i for i, r in enumerate(fused["results"], start=1)}
    for result in reranked["results"]:
        assert result["rerank_score"] == pytest.approx(overlap(QUERY, result["text"]))
        assert result["rank_before_rerank"] == fused_rank[result["chunk_id"]]
        assert result["score"] == next(  # the fused score is still the fused score
            r["score"] for r in fused["results"] if r["chunk_id"] == result["chunk_id"]
        )
    assert reranked["reranker"] == f"http:{server.base_url}"
    assert reranked["notices"] == [] and reranked["timing"]["rerank_ms"] > 0
    sent = server.requests[-1]["body"]
    assert sent["query"] == QUERY and sent["truncate"] is True
    assert len(sent["texts"]) == len(fused["results"])


def test_only_the_first_depth_candidates_are_reranked(
    anon_client: APIClient, corpus: Any, server: FakeReranker
) -> None:
    fused = names(search(anon_client))
    body = search(anon_client, rerank=True, rerank_depth=2)
    assert len(server.requests[-1]["body"]["texts"]) == 2
    head, tail = body["results"][:2], body["results"][2:]
    assert sorted(names(body)[:2]) == sorted(fused[:2])
    assert [r["rerank_score"] for r in head] == sorted(
        (r["rerank_score"] for r in head), reverse=True
    )
    assert {r["rank_before_rerank"] for r in head} == {1, 2}
    assert names(body)[2:] == fused[2:]  # beyond the depth: the fused order, unexplained
    assert all(r["rerank_score"] is None and r["rank_before_rerank"] is None for r in tail)


def test_pages_of_a_reranked_search_follow_the_reranked_order(
    anon_client: APIClient, corpus: Any, server: FakeReranker
) -> None:
    whole = names(search(anon_client, rerank=True))
    first = search(anon_client, rerank=True, top_k=2)
    second = search(anon_client, rerank=True, top_k=2, offset=2)
    assert names(first) + names(second) == whole[:4]
    assert first["total"] == second["total"] == len(whole)


def test_cohere_and_jina_style_servers_get_documents_model_and_key(
    anon_client: APIClient, corpus: Any, server: FakeReranker, settings: Any
) -> None:
    settings.RERANK_MODEL = "rerank-v3.5"
    settings.RERANK_API_KEY = "secret-key"
    body = search(anon_client, rerank=True)
    request = server.requests[-1]
    assert request["body"]["model"] == "rerank-v3.5" and "documents" in request["body"]
    assert request["headers"]["Authorization"] == "Bearer secret-key"
    assert names(body)[0] == "note.txt"
    assert body["reranker"] == "http:rerank-v3.5"


def test_grouped_by_document_after_the_rerank(
    anon_client: APIClient, db: None, ingest: Any, server: FakeReranker
) -> None:
    collection = CollectionFactory.create(slug="long", is_public=True)
    filler = " ".join(f"Sentence {i} is about rocks and minerals of the region." for i in range(60))
    ingest(
        collection,
        {
            # Its best fused chunk is the first; the reranker prefers the last one.
            "long.txt": f"Volcano survey: volcano lava report. {filler} Lava volcano lava.",
            "other.txt": "A volcano field with old lava tubes and craters to visit.",
        },
    )
    body = search(anon_client, rerank=True, group_by_document=True)
    documents = [r["citation"]["document_id"] for r in body["results"]]
    assert len(documents) == len(set(documents)) == body["total"] == 2
    chunks = search(anon_client, rerank=True, rerank_depth=200, top_k=50)["results"]
    best_per_document: dict[int, Any] = {}
    for result in chunks:  # the reranked order, every chunk
        best_per_document.setdefault(result["citation"]["document_id"], result["chunk_id"])
    assert [r["chunk_id"] for r in body["results"]] == list(best_per_document.values())
    assert len([r for r in chunks if r["citation"]["source_name"] == "long.txt"]) > 1


def test_mmr_runs_after_the_rerank(
    anon_client: APIClient, corpus: Any, server: FakeReranker
) -> None:
    body = search(anon_client, rerank=True, mmr_lambda=1.0)  # pure relevance: rerank order
    assert names(body) == names(search(anon_client, rerank=True))
    assert body["reranker"] is not None


def test_rerank_default_reranks_requests_that_do_not_say(
    anon_client: APIClient, corpus: Any, server: FakeReranker, settings: Any
) -> None:
    settings.RERANK_DEFAULT = True
    assert search(anon_client)["reranker"] is not None
    assert search(anon_client, rerank=False)["reranker"] is None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"rerank_depth": 0}, "rerank_depth"),
        ({"rerank_depth": 201}, "rerank_depth"),
        ({"rerank": "maybe"}, "rerank"),
    ],
)
def test_bad_rerank_parameters_are_400(
    anon_client: APIClient, corpus: Any, server: FakeReranker, payload: dict, field: str
) -> None:
    for url in ("/api/v1/search/", "/api/v1/context/"):
        response = anon_client.post(url, {"query": QUERY, **payload}, format="json")
        assert response.status_code == 400, response.content
        assert field in response.json()["errors"]


def test_rerank_without_a_configured_reranker_is_400(
    anon_client: APIClient, corpus: Any, settings: Any
) -> None:
    settings.RERANK_BACKEND = ""
    for url in ("/api/v1/search/", "/api/v1/context/", "/api/v1/ask/"):
        response = anon_client.post(url, {"query": QUERY, "rerank": True}, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["errors"]["rerank"] == ["reranking is not configured"]
    response = anon_client.get("/api/v1/search/", {"query": QUERY, "rerank": "true"})
    assert response.status_code == 400
    assert search(anon_client, rerank=False)["reranker"] is None


def test_a_server_that_is_down_leaves_the_fused_order_with_a_notice(
    anon_client: APIClient, corpus: Any, settings: Any
) -> None:
    fused = names(search(anon_client))
    settings.RERANK_BACKEND = "http"
    settings.RERANK_BASE_URL = url = down_url()
    body = search(anon_client, rerank=True)
    assert names(body) == fused
    assert body["reranker"] is None
    assert len(body["notices"]) == 1
    assert body["notices"][0].startswith(
        f"reranking skipped: rerank server {url}/rerank unreachable"
    )
    assert all(r["rerank_score"] is None for r in body["results"])


def test_a_failing_server_is_retried_then_skipped_with_a_notice(
    anon_client: APIClient, corpus: Any, server: FakeReranker
) -> None:
    server.fail_times = 1  # one 500, then well: the retry reranks
    body = search(anon_client, rerank=True)
    assert body["reranker"] is not None and len(server.requests) == 2
    server.status = 500
    body = search(anon_client, rerank=True)
    assert body["reranker"] is None
    assert body["notices"][0].startswith(
        f"reranking skipped: rerank server {server.base_url}/rerank answered 500"
    )
    server.status = 401  # not retried: the key is wrong, asking again will not help
    before = len(server.requests)
    body = search(anon_client, rerank=True)
    assert len(server.requests) == before + 1 and "answered 401" in body["notices"][0]


def test_a_malformed_answer_is_a_notice(
    anon_client: APIClient, corpus: Any, server: FakeReranker, settings: Any
) -> None:
    settings.RERANK_BASE_URL = server.base_url + "/nowhere"  # 404: not retried
    body = search(anon_client, rerank=True)
    assert body["reranker"] is None and "answered 404" in body["notices"][0]


def context_sources(body: dict[str, Any]) -> list[str]:
    return [c["source_name"] for c in body["citations"]]


def test_context_and_ask_rerank_when_asked(
    anon_client: APIClient, corpus: Any, server: FakeReranker, settings: Any
) -> None:
    def context(**payload: Any) -> dict[str, Any]:
        response = anon_client.post("/api/v1/context/", {"query": QUERY, **payload}, format="json")
        assert response.status_code == 200, response.content
        return dict(response.json())

    plain = context()
    reranked = context(rerank=True)
    assert plain["reranker"] is None
    assert reranked["reranker"] == f"http:{server.base_url}" and reranked["notices"] == []
    assert context_sources(reranked) == names(search(anon_client, rerank=True))
    assert context_sources(reranked) != context_sources(plain)
    with FakeLLM() as llm:
        settings.LLM_BASE_URL = llm.base_url
        settings.LLM_MODEL = "fake"
        response = anon_client.post("/api/v1/ask/", {"query": QUERY, "rerank": True}, format="json")
        assert response.status_code == 200, response.content
        retrieval = response.json()["retrieval"]
        assert retrieval["reranker"] == reranked["reranker"]
        assert context_sources(retrieval) == context_sources(reranked)
        prompt = llm.requests[-1]["body"]["messages"][-1]["content"]
        assert "[1] Lava lava lava. (note.txt)" in prompt  # the reranker's first is [1]


def test_the_page_offers_rerank_only_when_configured(
    corpus: Any, server: FakeReranker, settings: Any
) -> None:
    client = Client()
    page = client.get("/", {"q": QUERY, "rerank": "on"}).content.decode()
    assert 'name="rerank"' in page and "reranked" in page and "before reranking" in page
    shown = [int(n) for n in re.findall(r'<article aria-labelledby="result-(\d+)"', page)]
    api = search(APIClient(), rerank=True)["results"]
    assert shown == [r["chunk_id"] for r in api][: len(shown)] and shown
    plain = client.get("/", {"q": QUERY}).content.decode()
    assert "before reranking" not in plain
    server.status = 500
    failed = client.get("/", {"q": QUERY, "rerank": "on"}).content.decode()
    assert "Reranking skipped: rerank server" in failed and "before reranking" not in failed
    settings.RERANK_BACKEND = ""
    assert 'name="rerank"' not in client.get("/", {"q": QUERY}).content.decode()


def _beir(root: Path) -> Path:
    corpus = [{"_id": name, "title": "", "text": text} for name, text in FILES.items()]
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(row) for row in corpus) + "\n")
    queries = [{"_id": "q1", "text": QUERY}, {"_id": "q2", "text": "salt water oceans"}]
    (root / "queries_test.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tnote.txt\t1\nq2\tocean.txt\t1\n"
    )
    return root


def test_evaluate_rerank_adds_reranked_variants(
    db: None, tmp_path: Path, server: FakeReranker
) -> None:
    path = _beir(tmp_path / "tiny")
    output = tmp_path / "report.json"
    out = StringIO()
    call_command(
        "evaluate",
        "--dataset",
        str(path),
        "--rerank",
        "--rerank-depth",
        "10",
        "--modes",
        "hybrid,hybrid_rerank,semantic_rerank",
        "--output",
        str(output),
        stdout=out,
        verbosity=0,
    )
    report = json.loads(output.read_text())
    assert set(report) == {"hybrid", "hybrid_rerank", "semantic_rerank"}
    # Word overlap puts note.txt first for q1 and ocean.txt for q2: a perfect ranking.
    assert report["hybrid_rerank"]["mrr@10"] == pytest.approx(1.0)
    assert f"reranker: http:{server.base_url}" in out.getvalue()
    assert len(server.requests[-1]["body"]["texts"]) <= 10
    server.status = 500
    with pytest.raises(CommandError, match="reranking failed in hybrid_rerank: reranking skipped"):
        call_command(
            "evaluate",
            "--dataset",
            str(path),
            "--rerank",
            "--modes",
            "hybrid_rerank",
            stdout=StringIO(),
            verbosity=0,
        )


def test_evaluate_rerank_needs_a_reranker(db: None, tmp_path: Path, settings: Any) -> None:
    settings.RERANK_BACKEND = ""
    with pytest.raises(CommandError, match="reranking is not configured"):
        call_command("evaluate", "--dataset", str(_beir(tmp_path / "d")), "--rerank", verbosity=0)


def test_start_up_checks_name_a_reranker_that_cannot_work(settings: Any, tmp_path: Path) -> None:
    from django.core.checks import run_checks

    def messages() -> list[str]:
        return [f"{m.id}: {m.msg}" for m in run_checks() if m.id and m.id.startswith("search.")]

    settings.RERANK_BACKEND = ""
    assert messages() == []
    settings.RERANK_BACKEND = "cohere"
    assert messages() == [
        "search.E001: RERANK_BACKEND 'cohere' is not one of: cross-encoder, http (or empty)"
    ]
    settings.RERANK_BACKEND = "cross-encoder"
    settings.RERANK_MODEL_PATH = str(tmp_path)
    assert messages() == [
        f"search.W001: RERANK_MODEL_PATH {tmp_path} is not a model folder (no config.json): "
        "searches asking to rerank are not reranked"
    ]
    settings.RERANK_BACKEND = "http"
    settings.RERANK_BASE_URL = ""
    assert messages()[0].startswith("search.W001: RERANK_BACKEND is http but RERANK_BASE_URL")

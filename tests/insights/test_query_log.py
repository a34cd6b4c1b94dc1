"""The query log: one row per API search, similar, context, ask and search page call (not
for evaluate, which calls search() directly), its settings, the retention sweep and the
user's own history API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from documents.models import Chunk
from insights.models import QueryLog
from insights.tasks import query_log_sweep
from search.retrieval import SearchParams, search
from tests.helpers.llm_server import FakeLLM


def only_row() -> QueryLog:
    rows = list(QueryLog.objects.all())
    assert len(rows) == 1, rows
    return rows[0]


def test_api_search_writes_one_row_with_what_was_searched(
    user_client: APIClient, user: Any, corpus: dict[str, Any]
) -> None:
    response = user_client.post(
        "/api/v1/search/",
        {"query": "volcano lava", "mode": "hybrid", "top_k": 5},
        format="json",
    )
    assert response.status_code == 200
    row = only_row()
    assert response["X-Query-Log-Id"] == str(row.pk)
    assert row.user == user and row.endpoint == "search" and row.mode == "hybrid"
    assert row.query == "volcano lava" and row.params["top_k"] == 5
    body = response.json()
    assert row.result_count == len(body["results"]) >= 2
    assert [r["chunk"] for r in row.results] == [r["chunk_id"] for r in body["results"]]
    assert row.results[0]["document"] == corpus["docs"]["volcano.txt"].pk
    assert row.results[0]["score"] == pytest.approx(body["results"][0]["score"], abs=1e-5)
    assert {"embedding_ms", "sql_ms", "total_ms"} <= set(row.timing_ms)
    assert row.total_ms == pytest.approx(body["timing"]["total_ms"], abs=0.01)
    # Unfiltered, the user searched every collection they may read.
    assert sorted(row.collection_ids) == sorted([corpus["public"].pk, corpus["private"].pk])
    # The models that served it (the response's `models`) and no reranker.
    assert row.model == ",".join(body["models"]) == "all-MiniLM-L6-v2" and not row.reranked


def test_a_filtered_search_records_the_filtered_collections(
    user_client: APIClient, corpus: dict[str, Any]
) -> None:
    filters = '{"collections": ["priv"]}'
    user_client.get("/api/v1/search/", {"query": "volcano", "filters": filters})
    assert only_row().collection_ids == [corpus["private"].pk]


def test_zero_results_are_logged(anon_client: APIClient, corpus: dict[str, Any]) -> None:
    anon_client.post("/api/v1/search/", {"query": "photosynthesis", "mode": "keyword"})
    row = only_row()
    assert row.result_count == 0 and row.results == [] and row.user is None
    assert row.collection_ids == [corpus["public"].pk]  # anonymous: public only


def test_anonymous_text_can_be_left_out(
    anon_client: APIClient, user_client: APIClient, corpus: dict[str, Any], settings: Any
) -> None:
    settings.QUERY_LOG_ANONYMOUS_TEXT = False
    anon_client.post("/api/v1/search/", {"query": "volcano"})
    user_client.post("/api/v1/search/", {"query": "ocean"})
    anonymous, signed_in = QueryLog.objects.order_by("pk")
    assert anonymous.query == "" and anonymous.result_count >= 1
    assert signed_in.query == "ocean"


def test_query_log_off_writes_nothing(
    anon_client: APIClient, corpus: dict[str, Any], settings: Any
) -> None:
    settings.QUERY_LOG = False
    response = anon_client.post("/api/v1/search/", {"query": "volcano"})
    assert response.status_code == 200 and "X-Query-Log-Id" not in response
    assert not QueryLog.objects.exists()


def test_bad_requests_and_direct_search_calls_are_not_logged(
    anon_client: APIClient, corpus: dict[str, Any]
) -> None:
    assert anon_client.post("/api/v1/search/", {"query": ""}).status_code == 400
    search(SearchParams(query="volcano"), user=None)  # as evaluate and bench call it
    assert not QueryLog.objects.exists()


def test_similar_is_logged(user_client: APIClient, corpus: dict[str, Any]) -> None:
    chunk = Chunk.objects.filter(document=corpus["docs"]["volcano.txt"]).first()
    assert chunk is not None
    response = user_client.get(f"/api/v1/chunks/{chunk.pk}/similar/")
    assert response.status_code == 200
    row = only_row()
    assert row.endpoint == "similar" and row.params["chunk_id"] == chunk.pk
    assert row.mode == "semantic" and row.result_count == len(response.json()["results"])


def test_context_is_logged_with_its_passages(
    user_client: APIClient, corpus: dict[str, Any]
) -> None:
    response = user_client.post(
        "/api/v1/context/", {"query": "volcano", "max_tokens": 500}, format="json"
    )
    assert response.status_code == 200
    row = only_row()
    citations = response.json()["citations"]
    assert row.endpoint == "context" and row.params["max_tokens"] == 500
    assert [r["chunk"] for r in row.results] == [c["chunk_id"] for c in citations]
    assert "assembly_ms" in row.timing_ms and row.llm_model == ""


def test_ask_is_logged_and_keeps_the_answer_only_when_told(
    user_client: APIClient, corpus: dict[str, Any], llm: FakeLLM, settings: Any
) -> None:
    response = user_client.post("/api/v1/ask/", {"query": "volcano"}, format="json")
    assert response.status_code == 200, response.content
    row = only_row()
    assert row.endpoint == "ask" and row.llm_model == "test-model" and row.answer == ""
    assert "llm_ms" in row.timing_ms and row.result_count >= 1
    settings.QUERY_LOG_ANSWERS = True
    response = user_client.post("/api/v1/ask/", {"query": "ocean"}, format="json")
    latest = QueryLog.objects.get(pk=response["X-Query-Log-Id"])
    assert latest.answer == response.json()["answer"] != ""


def test_a_streamed_answer_is_logged_once_retrieval_is_done(
    user_client: APIClient, corpus: dict[str, Any], llm: FakeLLM
) -> None:
    response = user_client.post("/api/v1/ask/", {"query": "volcano", "stream": True}, format="json")
    b"".join(response.streaming_content)  # type: ignore[attr-defined]
    row = only_row()
    assert row.endpoint == "ask" and row.result_count >= 1 and response["X-Query-Log-Id"]


def test_the_search_page_is_logged_once_per_search(client: Client, corpus: dict[str, Any]) -> None:
    client.get("/")  # no search: nothing to log
    assert not QueryLog.objects.exists()
    response = client.get("/", {"q": "volcano", "mode": "keyword"})
    assert response.status_code == 200
    row = only_row()
    assert row.endpoint == "page" and row.mode == "keyword" and row.query == "volcano"
    assert row.params["offset"] == 0 and row.result_count >= 1
    assert f'name="query_log" value="{row.pk}"' in response.content.decode()


def test_the_page_logs_its_answer(
    client: Client, corpus: dict[str, Any], llm: FakeLLM, settings: Any
) -> None:
    settings.QUERY_LOG_ANSWERS = True
    client.post("/?q=volcano&mode=hybrid")
    row = only_row()
    assert row.llm_model == "test-model" and "The passages say so" in row.answer


def test_the_retention_sweep_deletes_old_rows_only(
    anon_client: APIClient, corpus: dict[str, Any], settings: Any
) -> None:
    settings.QUERY_LOG_RETENTION_DAYS = 30
    for _ in range(3):
        anon_client.post("/api/v1/search/", {"query": "volcano"})
    old, older, fresh = QueryLog.objects.order_by("pk")
    QueryLog.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=31))
    QueryLog.objects.filter(pk=older.pk).update(created=timezone.now() - timedelta(days=400))
    assert query_log_sweep() == 2
    assert list(QueryLog.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert query_log_sweep() == 0  # runs again harmlessly


def test_the_retention_sweep_is_scheduled(db: None) -> None:
    from django_q.models import Schedule

    from documents.queue import ensure_periodic_schedules

    ensure_periodic_schedules()
    schedule = Schedule.objects.get(func="insights.tasks.query_log_sweep")
    assert schedule.schedule_type == Schedule.HOURLY and schedule.repeats == -1


def test_users_see_and_delete_only_their_own_history(
    user_client: APIClient, user: Any, other_user: Any, corpus: dict[str, Any]
) -> None:
    other = APIClient()
    other.force_authenticate(other_user)
    mine = user_client.post("/api/v1/search/", {"query": "volcano"})["X-Query-Log-Id"]
    theirs = other.post("/api/v1/search/", {"query": "ocean"})["X-Query-Log-Id"]
    listed = user_client.get("/api/v1/history/").json()["results"]
    assert [r["id"] for r in listed] == [int(mine)] and listed[0]["query"] == "volcano"
    assert user_client.get(f"/api/v1/history/{theirs}/").status_code == 404
    assert user_client.delete(f"/api/v1/history/{theirs}/").status_code == 404
    assert user_client.delete(f"/api/v1/history/{mine}/").status_code == 204
    assert not QueryLog.objects.filter(pk=mine).exists()
    user_client.post("/api/v1/search/", {"query": "lava"})
    assert user_client.delete("/api/v1/history/").status_code == 204
    assert list(QueryLog.objects.values_list("pk", flat=True)) == [int(theirs)]
    assert APIClient().get("/api/v1/history/").status_code in (401, 403)

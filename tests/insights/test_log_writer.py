"""The query log row is written off the request path: the request reserves the id and
queues the row, a background thread writes it in bulk (and a vote flushes this process's
queue first, so voting at once works)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from insights import log_writer
from insights.models import QueryLog
from tests.factories import CollectionFactory, UserFactory


@pytest.fixture
def committed(transactional_db: None, ingest: Any, settings: Any) -> Any:
    """Committed data (no test transaction), as a server sees it."""
    settings.QUERY_LOG_FLUSH_SECONDS = 0.2
    collection = CollectionFactory.create(slug="pub", is_public=True)
    ingest(collection, {"volcano.txt": "Volcanoes erupt lava and ash."})
    return collection


def test_the_request_does_not_insert_and_the_row_arrives_soon(committed: Any) -> None:
    user: Any = UserFactory.create()
    client = APIClient()
    client.force_authenticate(user)
    client.post("/api/v1/search/", {"query": "lava"}, format="json")  # warm: ids reserved
    with CaptureQueriesContext(connection) as queries:
        started = time.time()
        response = client.post("/api/v1/search/", {"query": "volcano lava"}, format="json")
    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "insights_querylog" in q["sql"]]
    pk = int(response["X-Query-Log-Id"])
    deadline = time.monotonic() + 10
    while not QueryLog.objects.filter(pk=pk).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    row = QueryLog.objects.get(pk=pk)
    assert row.user == user and row.query == "volcano lava" and row.results
    assert row.collection_ids == [committed.pk]
    assert abs(row.created.timestamp() - started) < 2  # when it ran, not when written


def test_a_vote_right_after_the_search_finds_its_row(committed: Any, settings: Any) -> None:
    settings.QUERY_LOG_FLUSH_SECONDS = 60  # the thread will not have written it yet
    voter: Any = UserFactory.create()
    client = APIClient()
    client.force_authenticate(voter)
    response = client.post("/api/v1/search/", {"query": "volcano"}, format="json")
    pk = int(response["X-Query-Log-Id"])
    chunk = response.json()["results"][0]["chunk_id"]
    vote = client.post(
        "/api/v1/feedback/", {"query_log": pk, "chunk": chunk, "useful": True}, format="json"
    )
    assert vote.status_code in (200, 201), vote.content


def test_rows_queued_at_exit_are_written(committed: Any, settings: Any) -> None:
    settings.QUERY_LOG_FLUSH_SECONDS = 60
    client = APIClient()
    pk = int(client.get("/api/v1/search/", {"query": "ash"})["X-Query-Log-Id"])
    assert log_writer.flush() == 1  # what atexit runs
    assert QueryLog.objects.get(pk=pk).user is None

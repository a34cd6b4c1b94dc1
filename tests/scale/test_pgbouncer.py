"""A real PgBouncer in transaction mode in front of the test database: ingestion, search
(with its transaction-local settings), the API and a real worker all work through it,
and no session state is left on the pooled server connections."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import connections
from rest_framework.test import APIClient

from documents.models import Document
from tests.conftest import ingest_files
from tests.factories import CollectionFactory, UserFactory
from tests.helpers.worker import wait_until
from tests.scale.pgbouncer import POOL_SIZE, PgBouncer

pytestmark = pytest.mark.slow


def _logins(bouncer: PgBouncer, database: str) -> int:
    return bouncer.log().count(f"login attempt: db={database} ")


def test_ingestion_search_and_api_through_pgbouncer(through_pgbouncer: PgBouncer) -> None:
    database = connections["default"].settings_dict["NAME"]
    owner: Any = UserFactory.create()
    collection: Any = CollectionFactory.create(slug="lab", owner=owner)
    ingest_files(collection, {"volcano.txt": "Volcanoes erupt lava and ash. Magma rises."})
    assert _logins(through_pgbouncer, database) >= 1  # this test's own queries went through it

    client = APIClient()
    client.force_authenticate(owner)
    for mode in ("hybrid", "semantic", "keyword"):
        response = client.post(
            "/api/v1/search/", {"query": "volcano lava", "mode": mode}, format="json"
        )
        assert response.status_code == 200, response.content
        assert response.json()["results"][0]["citation"]["source_name"] == "volcano.txt"
    reader = UserFactory.create()
    granted = client.post(
        "/api/v1/collections/lab/grants/", {"user": reader.username}, format="json"
    )
    assert granted.status_code == 201, granted.content
    listed = client.get("/api/v1/documents/", {"collection": "lab"})
    assert listed.status_code == 200 and listed.json()["count"] == 1

    # Hold every server connection of the pool at once: none kept the search's
    # statement_timeout or HNSW settings (they were transaction-local).
    clients = [psycopg.connect(through_pgbouncer.url(database)) for _ in range(POOL_SIZE)]
    try:
        for conn in clients:
            row = conn.execute(
                "SELECT current_setting('statement_timeout'),"
                " current_setting('hnsw.ef_search', true),"
                " current_setting('hnsw.iterative_scan', true)"
            ).fetchone()
            assert row is not None
            assert row[0] == "0" and row[1] in (None, "", "40") and row[2] in (None, "", "off")
    finally:
        for conn in clients:
            conn.close()


def test_a_worker_through_pgbouncer(through_pgbouncer: PgBouncer, start_worker: Any) -> None:
    database = connections["default"].settings_dict["NAME"]
    before = _logins(through_pgbouncer, database)
    worker = start_worker(
        DATABASE_URL=through_pgbouncer.url(database), DISABLE_SERVER_SIDE_CURSORS="1"
    )
    owner: Any = UserFactory.create()
    collection: Any = CollectionFactory.create(slug="lab", owner=owner)
    client = APIClient()
    client.force_authenticate(owner)
    response = client.post(
        "/api/v1/documents/",
        {"collection": "lab", "text": "Glaciers carve valleys. " * 40, "title": "Ice"},
        format="json",
    )
    assert response.status_code == 202, response.content
    pk = response.json()["id"]
    wait_until(
        lambda: Document.objects.get(pk=pk).status in ("ready", "failed"),
        timeout=120,
        what="the worker to process the document through PgBouncer",
        workers=[worker],
    )
    document = Document.objects.get(pk=pk)
    assert document.status == "ready", document.error
    assert document.chunks.count() >= 1 and collection.documents.count() == 1
    assert _logins(through_pgbouncer, database) > before + 1  # the worker's connections too

"""Read replicas against a real streaming replica (pg_basebackup -R of the test server):
searches and the read pages run there, the writer's next read goes to the primary, a
stopped or lagging replica falls back to the primary, and access rules hold there."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from ragsite import db_routing
from tests.conftest import ingest_files
from tests.factories import CollectionFactory, UserFactory
from tests.scale.conftest import REPLICA_ALIAS
from tests.scale.replica import StreamingReplica

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, databases=["default", REPLICA_ALIAS]),
]

SEARCH_MARK = "set_config"  # the search's first statement (transaction-local settings)


def _api_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _search(client: APIClient, query: str = "volcano lava") -> tuple[Any, str]:
    """POST a search; answer the response and the alias whose connection ran it."""
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(connections[REPLICA_ALIAS]) as replica,
    ):
        response = client.post("/api/v1/search/", {"query": query}, format="json")
    assert response.status_code == 200, response.content
    ran_on = [
        alias
        for alias, captured in (("default", primary), (REPLICA_ALIAS, replica))
        if any(SEARCH_MARK in q["sql"] for q in captured.captured_queries)
    ]
    assert len(ran_on) == 1, ran_on
    return response.json(), ran_on[0]


def _in_recovery(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        return bool(cursor.fetchone()[0])


@pytest.fixture
def owner_corpus(replicated: Callable[[], None]) -> Any:
    owner = UserFactory.create()
    private = CollectionFactory.create(slug="lab", owner=owner)
    ingest_files(private, {"volcano.txt": "Volcanoes erupt lava and ash. Magma rises."})
    replicated()
    return owner, private


def test_search_runs_on_the_replica_and_the_writer_then_reads_the_primary(
    owner_corpus: Any, replicated: Callable[[], None]
) -> None:
    owner, private = owner_corpus
    client = _api_client(owner)
    body, alias = _search(client)
    assert alias == REPLICA_ALIAS and _in_recovery(alias)
    assert body["results"][0]["citation"]["source_name"] == "volcano.txt"

    renamed = client.patch(f"/api/v1/collections/{private.slug}/", {"name": "Renamed"})
    assert renamed.status_code == 200, renamed.content
    _, alias = _search(client)
    assert alias == "default" and not _in_recovery(alias)  # pinned: reads its own write

    # Another user was not pinned by that write.
    other = UserFactory.create()
    _, alias = _search(_api_client(other))
    assert alias == REPLICA_ALIAS


def test_the_pin_ends_after_its_seconds(owner_corpus: Any, settings: Any) -> None:
    owner, private = owner_corpus
    settings.DATABASE_REPLICA_PIN_SECONDS = 1
    client = _api_client(owner)
    assert client.patch(f"/api/v1/collections/{private.slug}/", {"name": "R"}).status_code == 200
    assert _search(client)[1] == "default"
    import time

    time.sleep(1.2)
    assert _search(client)[1] == REPLICA_ALIAS


def test_document_page_reads_the_replica(owner_corpus: Any) -> None:
    owner, private = owner_corpus
    document = private.documents.get()
    client = Client()
    client.force_login(owner)
    with CaptureQueriesContext(connections[REPLICA_ALIAS]) as replica:
        response = client.get(f"/documents/{document.pk}/")
    assert response.status_code == 200
    assert any("documents_document" in q["sql"] for q in replica.captured_queries)
    # The session and the user came from the primary (never a just-written row missing).
    assert not any("django_session" in q["sql"] for q in replica.captured_queries)


def test_access_rules_hold_on_the_replica(
    owner_corpus: Any, replicated: Callable[[], None]
) -> None:
    owner, private = owner_corpus
    reader = UserFactory.create()
    body, alias = _search(_api_client(reader))
    assert alias == REPLICA_ALIAS and body["results"] == []
    body, alias = _search(APIClient())
    assert alias == REPLICA_ALIAS and body["results"] == []

    granted = _api_client(owner).post(
        f"/api/v1/collections/{private.slug}/grants/",
        {"user": reader.username, "permission": "read"},
        format="json",
    )
    assert granted.status_code == 201, granted.content
    replicated()
    body, alias = _search(_api_client(reader))
    assert alias == REPLICA_ALIAS
    assert [r["citation"]["collection"] for r in body["results"]] == ["lab"]


def test_a_stopped_replica_falls_back_to_the_primary(
    owner_corpus: Any, replica_db: StreamingReplica
) -> None:
    owner, _ = owner_corpus
    reader = _api_client(owner)
    assert _search(reader)[1] == REPLICA_ALIAS  # checked healthy a moment ago
    replica_db.stop("immediate")
    try:
        # Stopped since its last check: the search fails there and runs again on the primary.
        response = reader.post("/api/v1/search/", {"query": "volcano lava"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["results"][0]["citation"]["source_name"] == "volcano.txt"
        assert not db_routing.replica_is_healthy(REPLICA_ALIAS)
        # Later requests skip it without trying.
        with CaptureQueriesContext(connections["default"]) as primary:
            again = reader.post("/api/v1/search/", {"query": "volcano"}, format="json")
        assert again.status_code == 200
        assert any(SEARCH_MARK in q["sql"] for q in primary.captured_queries)
        page = Client()
        page.force_login(owner)
        assert page.get("/?q=volcano").status_code == 200
    finally:
        replica_db.start()


def test_a_lagging_replica_is_skipped(owner_corpus: Any, settings: Any) -> None:
    owner, _ = owner_corpus
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = -1.0  # any lag, even none, is too much
    db_routing.forget_replica_health()
    body, alias = _search(_api_client(owner))
    assert alias == "default" and body["results"]


def test_writes_and_other_apps_stay_on_the_primary(replica_db: StreamingReplica) -> None:
    from django.contrib.auth import get_user_model

    from documents.models import Collection

    router = db_routing.ReplicaRouter()
    with db_routing.replica_reads(RequestFactory().get("/")):
        assert router.db_for_read(Collection) == REPLICA_ALIAS
        assert router.db_for_read(get_user_model()) == "default"
        assert router.db_for_write(Collection) == "default"
    assert router.db_for_read(Collection) == "default"  # outside a read view

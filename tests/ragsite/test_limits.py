"""Every limit answers with a clear error (413, 429, 400) and is a setting."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from documents.models import Document
from tests.factories import UserFactory


def test_signed_in_callers_are_throttled_per_user_across_tokens(settings: Any, user: Any) -> None:
    from accounts.services import token_create

    settings.API_THROTTLE_USER = "3/hour"
    clients = []
    for name in ("a", "b"):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user, name=name)[1]}")
        clients.append(client)
    answers = [clients[i % 2].get("/api/v1/collections/").status_code for i in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = clients[0].get("/api/v1/collections/")
    assert refused.status_code == 429
    assert "throttled" in refused.json()["detail"] and int(refused["Retry-After"]) > 0
    # Another user has their own budget.
    other = APIClient()
    other.force_authenticate(UserFactory.create())
    assert other.get("/api/v1/collections/").status_code == 200


def test_anonymous_callers_are_throttled_per_address_in_the_shared_table(
    settings: Any, db: None
) -> None:
    settings.API_THROTTLE_ANON = "2/hour"
    first, second = APIClient(REMOTE_ADDR="10.0.0.1"), APIClient(REMOTE_ADDR="10.0.0.2")
    assert [first.get("/api/v1/collections/").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/collections/").status_code == 200
    # The counters are rows in one database table, which every web process shares.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count FROM ratelimit_counter WHERE key LIKE %s ORDER BY 1", ["anon:%"]
        )
        assert [row[0] for row in cursor.fetchall()] == [1, 3]


def test_an_empty_rate_turns_a_throttle_off(settings: Any, db: None) -> None:
    settings.API_THROTTLE_ANON = ""
    client = APIClient()
    assert {client.get("/api/v1/collections/").status_code for _ in range(30)} == {200}


def test_uploads_over_the_size_limit_are_413(
    settings: Any, user_client: APIClient, collection: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    file = SimpleUploadedFile("big.txt", b"word " * 300)
    response = user_client.post(
        "/api/v1/documents/", {"collection": collection.slug, "file": file}, format="multipart"
    )
    assert response.status_code == 413
    assert "1000" in response.json()["detail"]
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
    response = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "text": "word " * 1000},
        format="json",
    )
    assert response.status_code == 413
    assert "send large documents as a file" in response.json()["detail"]
    assert not Document.objects.exists()
    # The server keeps serving.
    assert user_client.get("/api/v1/collections/").status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": "x" * 1001}, "query: Ensure this field has no more than 1000 characters."),
        ({"query": "x", "top_k": 101}, "top_k: Ensure this value is less than or equal to 100."),
        ({"query": "x", "top_k": 0}, "top_k: Ensure this value is greater than or equal to 1."),
    ],
)
def test_query_length_and_top_k_are_capped(
    anon_client: APIClient, db: None, body: dict[str, Any], message: str
) -> None:
    response = anon_client.post("/api/v1/search/", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == message


def test_list_pages_are_capped(settings: Any, user_client: APIClient, collection: Any) -> None:
    settings.API_MAX_PAGE_SIZE = 5
    assert user_client.get("/api/v1/documents/", {"limit": 5}).status_code == 200
    for limit in ("6", "0", "abc"):
        response = user_client.get("/api/v1/documents/", {"limit": limit})
        assert response.status_code == 400
        assert response.json()["detail"] == "limit: must be between 1 and 5"


def test_files_per_multi_upload_are_capped(settings: Any, db: None) -> None:
    from tests.factories import CollectionFactory

    settings.MAX_FILES_PER_UPLOAD = 2
    staff = UserFactory.create(is_staff=True)
    collection = CollectionFactory.create(owner=staff)
    client = Client()
    client.force_login(staff)
    files = [SimpleUploadedFile(f"{i}.txt", f"text {i}".encode()) for i in range(3)]
    response = client.post(
        "/admin/documents/document/upload/", {"collection": collection.pk, "files": files}
    )
    assert response.status_code == 200
    assert "At most 2 files at once; you chose 3." in response.content.decode()
    assert not Document.objects.exists()


def test_behind_a_proxy_anonymous_clients_are_told_apart(settings: Any, db: None) -> None:
    settings.API_THROTTLE_ANON = "1/hour"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "10.9.9.9"  # every request arrives from the proxy
    first = APIClient(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.1")
    second = APIClient(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert first.get("/api/v1/collections/").status_code == 200
    assert first.get("/api/v1/collections/").status_code == 429
    assert second.get("/api/v1/collections/").status_code == 200


def test_without_a_proxy_a_forged_forwarded_for_does_not_dodge_the_throttle(
    settings: Any, db: None
) -> None:
    settings.API_THROTTLE_ANON = "1/hour"
    client = APIClient(REMOTE_ADDR="198.51.100.7")
    assert client.get("/api/v1/collections/").status_code == 200
    forged = client.get("/api/v1/collections/", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert forged.status_code == 429


# --- under concurrency (issue #13.4) ---------------------------------------------------


def _away_from_a_window_edge(seconds: int = 3600, margin: float = 15.0) -> None:
    """Counters use fixed windows: do not start a burst just before one ends."""
    left = seconds - time.time() % seconds
    if left < margin:
        time.sleep(left + 0.5)


def _burst(url: str, headers: list[dict[str, str]], per_thread: int) -> Counter[int]:
    """`len(headers)` threads, each sending `per_thread` GETs with its headers at once."""
    start = threading.Barrier(len(headers))

    def run(header: dict[str, str]) -> list[int]:
        start.wait()
        statuses = []
        for _ in range(per_thread):
            request = urllib.request.Request(url, headers=header)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
        return statuses

    with ThreadPoolExecutor(max_workers=len(headers)) as pool:
        return Counter(status for statuses in pool.map(run, headers) for status in statuses)


def test_anonymous_throttle_holds_under_concurrency(live_server: Any, settings: Any) -> None:
    settings.API_THROTTLE_ANON = "20/hour"
    _away_from_a_window_edge()
    statuses = _burst(f"{live_server.url}/api/v1/collections/", [{}] * 8, per_thread=10)
    assert statuses == {200: 20, 429: 60}


def test_user_throttle_holds_under_concurrency_across_tokens(
    live_server: Any, settings: Any
) -> None:
    from accounts.services import token_create

    settings.API_THROTTLE_USER = "15/hour"
    user = UserFactory.create()
    secrets = [token_create(user=user, name=name)[1] for name in ("a", "b")]
    headers = [{"Authorization": f"Bearer {secrets[i % 2]}"} for i in range(4)]
    _away_from_a_window_edge()
    statuses = _burst(f"{live_server.url}/api/v1/collections/", headers, per_thread=15)
    assert statuses == {200: 15, 429: 45}


def test_the_search_page_is_throttled_like_the_api(settings: Any, db: None) -> None:
    settings.API_THROTTLE_ANON = "3/hour"
    client, other = Client(REMOTE_ADDR="192.0.2.30"), Client(REMOTE_ADDR="192.0.2.31")
    assert [client.get("/", {"q": "aspirin"}).status_code for _ in range(4)] == [200] * 3 + [429]
    refused = client.get("/", {"q": "aspirin"})
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "Too many requests" in refused.content.decode()
    assert other.get("/", {"q": "aspirin"}).status_code == 200
    # Its own budget: the API still answers this address.
    assert APIClient(REMOTE_ADDR="192.0.2.30").get("/api/v1/collections/").status_code == 200

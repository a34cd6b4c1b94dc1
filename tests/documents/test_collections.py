"""Collections through the API and the admin alike: one service writes them, so the
language, the owner, slug clashes and the keyword index behave the same either way."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils.module_loading import import_string
from rest_framework.test import APIClient

from documents.models import Chunk, Collection, CollectionGrant
from tests.factories import CollectionFactory, UserFactory

GERMAN = {"haus.txt": "Die Häuser stehen am Fluss. Die Kinder spielen in den Gärten."}
NUL_SLUGS = ["a%00b", "%00"]


@pytest.fixture
def run_tasks_inline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tasks queued after commit run right there, in this process: the real task body,
    without a broker. Returns the names of the tasks run."""
    ran: list[str] = []

    def run(func: str, *args: Any, **kwargs: Any) -> None:
        ran.append(func)
        import_string(func)(*args)

    monkeypatch.setattr("documents.queue.async_task", run)
    return ran


def _keyword_hits(client: APIClient, query: str, slug: str) -> list[str]:
    response = client.post(
        "/api/v1/search/",
        {"query": query, "mode": "keyword", "filters": {"collections": [slug]}},
        format="json",
    )
    assert response.status_code == 200, response.content
    return [r["citation"]["source_name"] for r in response.json()["results"]]


def test_a_language_change_through_the_api_reindexes_in_a_task(
    user_client: APIClient,
    collection: Collection,
    ingest: Any,
    run_tasks_inline: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    ingest(collection, GERMAN)
    # English stemming leaves "Häuser" alone: the German plural form finds nothing.
    assert _keyword_hits(user_client, "Häusern", collection.slug) == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = user_client.patch(
            f"/api/v1/collections/{collection.slug}/", {"search_config": "german"}, format="json"
        )
    assert response.status_code == 200 and response.json()["search_config"] == "german"
    assert run_tasks_inline == []  # not inside the request: after commit, as a task
    for callback in callbacks:
        callback()
    assert run_tasks_inline == ["documents.tasks.rebuild_keyword_index"]
    assert set(Chunk.objects.values_list("search_config", flat=True)) == {"german"}
    assert _keyword_hits(user_client, "Häusern", collection.slug) == ["haus.txt"]


def test_a_language_change_in_the_admin_reindexes_too(
    staff_user: Any,
    ingest: Any,
    run_tasks_inline: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:
    collection = CollectionFactory.create(owner=staff_user, is_public=True)
    ingest(collection, GERMAN)
    client = Client()
    client.force_login(staff_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/admin/documents/collection/{collection.pk}/change/",
            {
                "name": collection.name,
                "slug": collection.slug,
                "description": "",
                "is_public": "on",
                "search_config": "german",
                "grants-TOTAL_FORMS": "0",
                "grants-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert run_tasks_inline == ["documents.tasks.rebuild_keyword_index"]
    assert _keyword_hits(APIClient(), "Häusern", collection.slug) == ["haus.txt"]


def test_the_admin_offers_only_installed_languages(staff_user: Any) -> None:
    client = Client()
    client.force_login(staff_user)
    page = client.get("/admin/documents/collection/add/").content.decode()
    assert '<option value="german">' in page and '<option value="english" selected>' in page
    response = client.post(
        "/admin/documents/collection/add/",
        {
            "name": "K",
            "slug": "k",
            "search_config": "klingon",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200 and "klingon is not one of" in response.content.decode()
    assert not Collection.objects.filter(slug="k").exists()


@pytest.mark.parametrize("superuser", [True, False])
def test_collections_created_in_the_admin_are_owned_by_their_creator(
    db: None, superuser: bool
) -> None:
    staff = UserFactory.create(is_staff=True, is_superuser=superuser)
    client = Client()
    client.force_login(staff)
    response = client.post(
        "/admin/documents/collection/add/",
        {
            "name": "Mine",
            "slug": "mine",
            "search_config": "simple",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    created = Collection.objects.get(slug="mine")
    assert created.owner == staff and created.search_config == "simple"


def test_a_superuser_may_give_a_new_collection_another_owner(db: None) -> None:
    root, other = UserFactory.create(is_staff=True, is_superuser=True), UserFactory.create()
    client = Client()
    client.force_login(root)
    client.post(
        "/admin/documents/collection/add/",
        {
            "name": "Theirs",
            "slug": "theirs",
            "owner": other.pk,
            "search_config": "english",
            "grants-TOTAL_FORMS": "0",
            "grants-INITIAL_FORMS": "0",
        },
    )
    assert Collection.objects.get(slug="theirs").owner == other


def test_a_put_without_language_keeps_it(user_client: APIClient, collection: Collection) -> None:
    Collection.objects.filter(pk=collection.pk).update(search_config="german")
    response = user_client.put(
        f"/api/v1/collections/{collection.slug}/",
        {"name": "Renamed", "slug": collection.slug},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["search_config"] == "german"
    collection.refresh_from_db()
    assert collection.search_config == "german" and collection.name == "Renamed"


def test_a_taken_slug_is_refused_in_the_same_words_whether_visible_or_not(
    user_client: APIClient, collection: Collection
) -> None:
    CollectionFactory.create(slug="hidden", owner=UserFactory.create())
    answers = [
        user_client.post("/api/v1/collections/", {"name": "x", "slug": slug}, format="json")
        for slug in ["hidden", collection.slug]
    ]
    assert [a.status_code for a in answers] == [400, 400]
    details = [a.json()["detail"] for a in answers]
    assert details[0] == details[1] == "slug: this slug is not available; choose another"
    assert "exist" not in details[0]


@pytest.mark.django_db(transaction=True)
def test_simultaneous_creates_of_one_slug_give_one_201_and_400s() -> None:
    users = [UserFactory.create() for _ in range(12)]
    barrier = Barrier(len(users))

    def create(user: Any) -> int:
        client = APIClient()
        client.force_authenticate(user)
        barrier.wait()
        try:
            response = client.post(
                "/api/v1/collections/", {"name": "Race", "slug": "race"}, format="json"
            )
        finally:
            connection.close()  # this thread's own connection
        return response.status_code

    with ThreadPoolExecutor(len(users)) as pool:
        codes = list(pool.map(create, users))
    assert sorted(codes) == [201] + [400] * 11
    assert Collection.objects.filter(slug="race").count() == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_admin_creates_of_one_slug_never_500() -> None:
    """The admin form's slug check passes for every racer; the losers' saves fail in
    the service and come back to the form with the reason, not as a 500."""
    staff = [UserFactory.create(is_staff=True) for _ in range(8)]
    barrier = Barrier(len(staff))

    def create(user: Any) -> tuple[int, str]:
        client = Client()
        client.force_login(user)
        barrier.wait()
        try:
            response = client.post(
                "/admin/documents/collection/add/",
                {
                    "name": "Race",
                    "slug": "admin-race",
                    "search_config": "english",
                    "grants-TOTAL_FORMS": "0",
                    "grants-INITIAL_FORMS": "0",
                },
                follow=True,
            )
        finally:
            connection.close()  # this thread's own connection
        return response.status_code, response.content.decode()

    with ThreadPoolExecutor(len(staff)) as pool:
        answers = list(pool.map(create, staff))
    assert [code for code, _ in answers] == [200] * len(staff)
    assert Collection.objects.filter(slug="admin-race").count() == 1
    # Everyone else was told why: by the form's own check or, racing it, by the service.
    refused = [page for _, page in answers if "was added successfully" not in page]
    assert len(refused) == len(staff) - 1
    assert all("is not available" in page or "already exists" in page for page in refused)


@pytest.mark.parametrize("slug", NUL_SLUGS)
def test_a_nul_in_the_slug_of_the_url_is_a_404(
    user_client: APIClient, collection: Collection, slug: str
) -> None:
    base = f"/api/v1/collections/{slug}/"
    calls = [
        user_client.get(base),
        user_client.patch(base, {"name": "x"}, format="json"),
        user_client.put(base, {"name": "x", "slug": "x"}, format="json"),
        user_client.delete(base),
        user_client.get(f"{base}grants/"),
        user_client.post(f"{base}grants/", {"user": "someone"}, format="json"),
        user_client.delete(f"{base}grants/1/"),
    ]
    assert [c.status_code for c in calls] == [404] * len(calls)
    assert all("detail" in c.json() for c in calls)


def test_granting_is_throttled(
    settings: Any, user_client: APIClient, collection: Collection
) -> None:
    settings.API_THROTTLE_GRANTS = "3/minute"
    url = f"/api/v1/collections/{collection.slug}/grants/"
    codes = [
        user_client.post(url, {"user": f"nobody{i}"}, format="json").status_code for i in range(4)
    ]
    assert codes == [400, 400, 400, 429]
    # Other requests of the same user are not held back by it.
    assert user_client.get(url).status_code == 200


def test_an_unknown_grantee_is_named_only_to_the_owner(
    user_client: APIClient, collection: Collection, user: Any
) -> None:
    reader = UserFactory.create()
    CollectionGrant.objects.create(collection=collection, user=reader, permission="write")
    other = APIClient()
    other.force_authenticate(reader)
    url = f"/api/v1/collections/{collection.slug}/grants/"
    refused = other.post(url, {"user": "nobody"}, format="json")
    assert refused.status_code == 403 and "nobody" not in refused.content.decode()
    told = user_client.post(url, {"user": "nobody"}, format="json")
    assert told.status_code == 400 and "nobody" in told.json()["detail"]

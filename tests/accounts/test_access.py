"""Who may read and write: anonymous, signed-in and token clients."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import token_create, token_revoke
from tests.factories import CollectionFactory


@pytest.fixture
def collections(db: None) -> tuple[Any, Any]:
    return CollectionFactory.create(is_public=True, slug="open"), CollectionFactory.create(
        slug="closed"
    )


def _slugs(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {item["slug"] for item in response.json()["results"]}


def test_anonymous_reads_only_public_collections(collections: Any) -> None:
    client = APIClient()
    assert _slugs(client.get("/api/v1/collections/")) == {"open"}
    assert client.get("/api/v1/collections/closed/").status_code == 404


def test_anonymous_cannot_write(collections: Any) -> None:
    client = APIClient()
    response = client.post("/api/v1/collections/", {"name": "x", "slug": "x"}, format="json")
    assert response.status_code in (401, 403)
    assert client.delete("/api/v1/collections/open/").status_code in (401, 403)


def test_signed_in_user_reads_public_and_own_and_creates(user: Any, collections: Any) -> None:
    client = Client()
    client.force_login(user)
    CollectionFactory.create(slug="own", owner=user)
    assert _slugs(client.get("/api/v1/collections/")) == {"open", "own"}
    response = client.post(
        "/api/v1/collections/",
        {"name": "Mine", "slug": "mine", "search_config": "german"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["owner"] == user.username


def test_session_writes_need_csrf(user: Any, collections: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(
        "/api/v1/collections/", {"name": "x", "slug": "x"}, content_type="application/json"
    )
    assert response.status_code == 403


def test_token_client_reads_and_writes(user: Any, collections: Any) -> None:
    _, secret = token_create(user=user, name="ci")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert _slugs(client.get("/api/v1/collections/")) == {"open"}
    response = client.post("/api/v1/collections/", {"name": "T", "slug": "t"}, format="json")
    assert response.status_code == 201
    assert ApiToken.objects.get().last_used is not None


def test_unknown_language_is_refused(user_client: APIClient) -> None:
    response = user_client.post(
        "/api/v1/collections/",
        {"name": "x", "slug": "x", "search_config": "klingon"},
        format="json",
    )
    assert response.status_code == 400
    assert "search_config" in response.json()["detail"]


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown"])
def test_revoked_expired_or_unknown_token_is_refused(
    user: Any, collections: Any, state: str
) -> None:
    token, secret = token_create(user=user, name="old")
    if state == "revoked":
        token_revoke(token=token)
    elif state == "expired":
        ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    else:
        secret = secret + "x"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/collections/").status_code == 401


def test_tokens_are_stored_hashed(user: Any) -> None:
    token, secret = token_create(user=user, name="a")
    token_create(user=user, name="b")
    stored = ApiToken.objects.get(pk=token.pk)
    assert secret not in (stored.digest, stored.prefix)
    assert secret.startswith(stored.prefix)
    assert ApiToken.objects.filter(user=user).count() == 2


def test_user_creates_and_revokes_own_tokens_through_the_api(user_client: APIClient) -> None:
    response = user_client.post("/api/v1/tokens/", {"name": "laptop"}, format="json")
    assert response.status_code == 201
    secret, token_id = response.json()["token"], response.json()["id"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/tokens/").status_code == 200
    assert user_client.delete(f"/api/v1/tokens/{token_id}/").status_code == 204
    assert client.get("/api/v1/tokens/").status_code == 401
    listed = user_client.get("/api/v1/tokens/").json()["results"]
    assert listed[0]["revoked"] is not None and listed[0]["is_active"] is False


def test_users_cannot_see_or_revoke_others_tokens(user: Any, user_client: APIClient) -> None:
    from tests.factories import UserFactory

    other_token, _ = token_create(user=UserFactory.create(), name="theirs")
    assert user_client.get("/api/v1/tokens/").json()["results"] == []
    assert user_client.delete(f"/api/v1/tokens/{other_token.pk}/").status_code == 404


def test_token_page_creates_and_revokes(user: Any) -> None:
    client = Client()
    client.force_login(user)
    page = client.post("/accounts/tokens/", {"name": "script"})
    assert page.status_code == 200
    token = ApiToken.objects.get(user=user)
    assert token.prefix.encode() in page.content
    client.post(f"/accounts/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked is not None


def test_token_page_needs_sign_in(db: None) -> None:
    response = Client().get("/accounts/tokens/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]

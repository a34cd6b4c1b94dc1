"""Getting a first token without a browser, the Authorization header never being
ignored, and tokens not outliving the token that created them (issues #13, #14)."""

from __future__ import annotations

import base64
import io
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import token_create

PASSWORD = "correct horse battery"  # tests/factories.py


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _client(authorization: str, address: str = "192.0.2.10") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


# --- a first token -----------------------------------------------------------------------


def test_create_token_command_prints_a_working_secret_once(user: Any) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_token", user.username, "--name", "ci", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("rag_") and "\n" not in secret
    token = ApiToken.objects.get(user=user)
    assert token.name == "ci" and token.expires is None and secret not in token.digest
    assert "never expires" in err.getvalue()
    response = _client(f"Bearer {secret}").get("/api/v1/tokens/")
    assert response.status_code == 200
    assert [t["name"] for t in response.json()["results"]] == ["ci"]


def test_create_token_command_sets_the_expiry(user: Any) -> None:
    call_command(
        "create_token", user.username, "--name", "week", "--expires-days", "7", stdout=io.StringIO()
    )
    token = ApiToken.objects.get(user=user)
    assert token.expires is not None
    assert abs(token.expires - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nobody", "--name", "x"], "no user named 'nobody'"),
        (["{user}", "--name", "x", "--expires-days", "0"], "--expires-days must be at least 1"),
        (["{user}", "--name", " "], "--name must be 1 to 100 characters"),
    ],
)
def test_create_token_command_refuses_bad_input(
    user: Any, arguments: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command(
            "create_token", *[a.format(user=user.username) for a in arguments], stdout=io.StringIO()
        )
    assert not ApiToken.objects.exists()


def test_basic_auth_creates_a_token_on_the_tokens_endpoint(user: Any) -> None:
    client = _client(_basic(user.username, PASSWORD))
    response = client.post("/api/v1/tokens/", {"name": "script"}, format="json")
    assert response.status_code == 201, response.content
    secret = response.json()["token"]
    assert _client(f"Bearer {secret}").get("/api/v1/tokens/").status_code == 200


def test_basic_auth_with_a_wrong_password_is_a_401(user: Any) -> None:
    response = _client(_basic(user.username, "wrong")).post(
        "/api/v1/tokens/", {"name": "x"}, format="json"
    )
    assert response.status_code == 401
    assert "Invalid username/password" in response.json()["detail"]
    assert not ApiToken.objects.exists()


def test_basic_auth_is_refused_everywhere_else(user: Any) -> None:
    client = _client(_basic(user.username, PASSWORD))
    response = client.post("/api/v1/collections/", {"name": "C", "slug": "c"}, format="json")
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["detail"]
    assert client.get("/api/v1/search/", {"query": "x"}).status_code == 401


def test_a_signed_in_session_creates_a_token(user: Any) -> None:
    client = APIClient()
    client.force_login(user)
    response = client.post("/api/v1/tokens/", {"name": "from the browser"}, format="json")
    assert response.status_code == 201
    assert response.json()["expires"] is None


# --- a header that is not a valid credential is never ignored ---------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["Token {secret}", "Bearer rag_not-a-real-token", "Bearer", "Bearer a b", "bearer\xff"],
)
def test_an_invalid_authorization_header_is_a_401_naming_the_scheme(
    user: Any, public_collection: Any, authorization: str
) -> None:
    _, secret = token_create(user=user, name="real")
    client = _client(authorization.format(secret=secret))
    response = client.get("/api/v1/search/", {"query": "anything"})
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"] == "Bearer"
    if authorization.startswith("Token"):
        assert response.json()["detail"] == (
            "Unsupported authorization scheme 'Token': send `Authorization: Bearer <token>`."
        )
    # Anonymous reads still work without the header.
    assert APIClient().get("/api/v1/search/", {"query": "anything"}).status_code == 200


def test_bad_tokens_from_one_address_are_429_after_the_budget(settings: Any, user: Any) -> None:
    settings.API_AUTH_FAILURES_PER_ADDRESS = "3/hour"
    guesser = "198.51.100.1"
    answers = [
        _client(f"Bearer rag_guess{i}", guesser).get("/api/v1/collections/").status_code
        for i in range(5)
    ]
    assert answers == [401, 401, 401, 429, 429]
    _, secret = token_create(user=user, name="real")
    locked = _client(f"Bearer {secret}", guesser).get("/api/v1/collections/")
    assert locked.status_code == 429  # even a right guess is refused now
    assert int(locked["Retry-After"]) > 0
    assert "Too many failed attempts" in locked.json()["detail"]
    assert (
        _client(f"Bearer {secret}", "198.51.100.2").get("/api/v1/collections/").status_code == 200
    )


def test_wrong_passwords_over_basic_auth_lock_out(settings: Any, user: Any) -> None:
    settings.LOGIN_FAILURES_PER_ADDRESS = "2/hour"
    wrong = _client(_basic(user.username, "wrong"))
    answers = [
        wrong.post("/api/v1/tokens/", {"name": "x"}, format="json").status_code for _ in range(3)
    ]
    assert answers == [401, 401, 429]
    right = _client(_basic(user.username, PASSWORD))
    assert right.post("/api/v1/tokens/", {"name": "x"}, format="json").status_code == 429
    assert not ApiToken.objects.exists()


# --- a token cannot outlive its parent ------------------------------------------------------


def _create_with_token(secret: str, body: dict[str, Any]) -> Any:
    return _client(f"Bearer {secret}").post("/api/v1/tokens/", body, format="json")


@pytest.mark.parametrize("asked", [None, timedelta(days=30)])
def test_a_token_made_with_a_token_expires_with_it(user: Any, asked: timedelta | None) -> None:
    parent, secret = token_create(
        user=user, name="short", expires=timezone.now() + timedelta(seconds=20)
    )
    body: dict[str, Any] = {"name": "child"}
    if asked is not None:
        body["expires"] = (timezone.now() + asked).isoformat()
    response = _create_with_token(secret, body)
    assert response.status_code == 201
    child = ApiToken.objects.get(pk=response.json()["id"])
    assert child.expires == parent.expires


def test_an_earlier_expiry_than_the_parents_is_kept(user: Any) -> None:
    _, secret = token_create(user=user, name="day", expires=timezone.now() + timedelta(days=1))
    soon = timezone.now() + timedelta(hours=1)
    response = _create_with_token(secret, {"name": "hour", "expires": soon.isoformat()})
    assert response.status_code == 201
    assert ApiToken.objects.get(pk=response.json()["id"]).expires == soon


def test_a_child_token_stops_working_when_its_parent_expires(user: Any) -> None:
    _, secret = token_create(user=user, name="brief", expires=timezone.now() + timedelta(seconds=2))
    response = _create_with_token(secret, {"name": "child"})
    assert response.status_code == 201
    child = _client(f"Bearer {response.json()['token']}")
    assert child.get("/api/v1/tokens/").status_code == 200
    time.sleep(2.5)
    assert child.get("/api/v1/tokens/").status_code == 401


def test_a_token_without_expiry_may_make_one_without_expiry(user: Any) -> None:
    _, secret = token_create(user=user, name="forever")
    response = _create_with_token(secret, {"name": "child"})
    assert response.status_code == 201
    assert response.json()["expires"] is None

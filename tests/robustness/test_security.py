"""Security checks as tests (issue #7).

* Every HTML form that POSTs carries a CSRF token and is refused without one (Django's
  test client skips the check unless asked, so these use ``enforce_csrf_checks=True``);
  so is the API when a browser session, rather than a bearer token, authenticates it.
* ``manage.py check --deploy`` is clean with the environment a production deployment sets
  (docker-compose.yml), and fails when one of those settings is missing.
* No secret in the files git tracks (or would pick up): private keys, cloud and API keys,
  a hard-coded SECRET_KEY.
* Document content is HTML-escaped wherever it is shown: search page, document page,
  admin change page, and the search API's HTML snippet.
* Originals are stored under generated names and downloaded as attachments, never
  rendered by the browser.
* Only staff reach the admin.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.services import token_create
from documents.models import Collection, Document
from tests.factories import CollectionFactory

BASE_DIR = Path(settings.BASE_DIR)
PASSWORD = "correct horse battery"  # tests/factories.py


# --- CSRF ------------------------------------------------------------------------------


class _PostForms(HTMLParser):
    """The POST forms of a page, each with the names of its inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[list[str]] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self._open = (values.get("method") or "get").lower() == "post"
            if self._open:
                self.forms.append([])
        elif tag == "input" and self._open:
            self.forms[-1].append(values.get("name") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False


def _post_forms(html: str) -> list[list[str]]:
    parser = _PostForms()
    parser.feed(html)
    return parser.forms


@pytest.fixture
def csrf_client(settings: Any) -> Client:
    # A model "configured" at a closed port: the search page shows its Ask form, and
    # asking fails at once (connection refused) with an error on the page.
    settings.LLM_BASE_URL = "http://127.0.0.1:9/v1"
    settings.LLM_MODEL = "unreachable"
    settings.LLM_TIMEOUT = 5.0
    return Client(enforce_csrf_checks=True)


def _sign_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/accounts/login/", None),
        ("/admin/login/", None),
        ("/accounts/tokens/", "user"),
        ("/?q=aspirin", "user"),  # the Ask form, when a search has results
        ("/admin/documents/document/upload/", "staff"),
        ("/admin/documents/collection/add/", "staff"),
        ("/admin/documents/document/", "staff"),  # the actions form
    ],
)
def test_every_post_form_carries_a_csrf_token(
    csrf_client: Client, user: Any, staff_user: Any, ingest: Any, path: str, who: str | None
) -> None:
    public = CollectionFactory.create(is_public=True, owner=staff_user)
    ingest(public, {"aspirin.txt": "Aspirin lowers the risk of heart attacks."})
    ApiToken.objects.create(user=user, name="listed", prefix="rag_x", digest="d" * 64)
    if who is not None:
        _sign_in(csrf_client, user if who == "user" else staff_user)
    response = csrf_client.get(path)
    assert response.status_code == 200
    forms = _post_forms(response.content.decode())
    assert forms, f"{path} shows no POST form"
    for inputs in forms:
        assert "csrfmiddlewaretoken" in inputs, f"a POST form on {path} lacks its CSRF token"


def _post_twice(client: Client, page: str, path: str, data: dict[str, Any]) -> tuple[int, Any]:
    """POST without the CSRF token, then (after loading ``page``, which sets the cookie)
    with it; returns the first status and the second response."""
    refused = client.post(path, data)
    client.get(page)
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    accepted = client.post(path, {**data, "csrfmiddlewaretoken": token})
    return refused.status_code, accepted


def test_login_forms_refuse_a_post_without_csrf_token(csrf_client: Client, staff_user: Any) -> None:
    for page in ("/accounts/login/", "/admin/login/"):
        credentials = {"username": staff_user.username, "password": PASSWORD}
        refused, accepted = _post_twice(csrf_client, page, page, credentials)
        assert refused == 403
        assert accepted.status_code == 302  # signed in
        csrf_client.logout()


def test_token_page_refuses_a_post_without_csrf_token(csrf_client: Client, user: Any) -> None:
    _sign_in(csrf_client, user)
    refused = csrf_client.post("/accounts/tokens/", {"name": "forged"})
    assert refused.status_code == 403
    assert not ApiToken.objects.filter(user=user).exists()
    _, accepted = _post_twice(csrf_client, "/accounts/tokens/", "/accounts/tokens/", {"name": "ok"})
    assert accepted.status_code == 200
    assert list(ApiToken.objects.filter(user=user).values_list("name", flat=True)) == ["ok"]


def test_token_revoke_and_logout_refuse_a_post_without_csrf_token(
    csrf_client: Client, user: Any
) -> None:
    token, _ = token_create(user=user, name="keep")
    _sign_in(csrf_client, user)
    revoke = reverse("token-revoke", args=[token.pk])
    refused, accepted = _post_twice(csrf_client, "/accounts/tokens/", revoke, {})
    assert refused == 403
    assert accepted.status_code == 302
    token.refresh_from_db()
    assert token.revoked is not None

    refused, accepted = _post_twice(csrf_client, "/accounts/tokens/", "/accounts/logout/", {})
    assert refused == 403
    assert accepted.status_code == 302
    assert "_auth_user_id" not in csrf_client.session


def test_admin_forms_refuse_a_post_without_csrf_token(csrf_client: Client, staff_user: Any) -> None:
    _sign_in(csrf_client, staff_user)
    collection = CollectionFactory.create(owner=staff_user)
    add = "/admin/documents/collection/add/"
    fields = {"name": "Forged", "slug": "forged", "search_config": "english"}
    refused, accepted = _post_twice(csrf_client, add, add, fields)
    assert refused == 403
    assert accepted.status_code == 302
    assert Collection.objects.filter(slug="forged").exists()

    upload = "/admin/documents/document/upload/"
    note = SimpleUploadedFile("note.txt", b"Forged upload.")
    assert csrf_client.post(upload, {"collection": collection.pk, "files": note}).status_code == 403
    assert not Document.objects.exists()
    csrf_client.get(upload)
    token = csrf_client.cookies[settings.CSRF_COOKIE_NAME].value
    note = SimpleUploadedFile("note.txt", b"Genuine upload.")
    upload_fields: dict[str, object] = {
        "collection": collection.pk,
        "files": note,
        "csrfmiddlewaretoken": token,
    }
    assert csrf_client.post(upload, upload_fields).status_code == 302
    assert Document.objects.filter(collection=collection).count() == 1


def test_ask_form_refuses_a_post_without_csrf_token(
    csrf_client: Client, user: Any, ingest: Any
) -> None:
    ingest(CollectionFactory.create(is_public=True), {"aspirin.txt": "Aspirin prevents clots."})
    _sign_in(csrf_client, user)
    refused, accepted = _post_twice(csrf_client, "/?q=aspirin", "/?q=aspirin", {})
    assert refused == 403
    assert accepted.status_code == 200
    assert accepted.context["answer_error"]  # it asked (the model is unreachable)


def test_api_with_a_session_needs_the_csrf_token_but_not_with_a_bearer_token(
    user: Any,
) -> None:
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(user)
    body = {"name": "Via session", "slug": "via-session"}
    response = session.post("/api/v1/collections/", body, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Collection.objects.filter(slug="via-session").exists()

    _, secret = token_create(user=user, name="api")
    bearer = APIClient(enforce_csrf_checks=True)
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = bearer.post("/api/v1/collections/", body, format="json")
    assert response.status_code == 201


# --- deployment settings ---------------------------------------------------------------


def _production_environment() -> dict[str, str]:
    """What docker-compose.yml sets for `web` (plus PATH, so Python runs)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "search.example.org,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS": "https://search.example.org",
        "DATABASE_URL": "postgres://ragsite:password@db:5432/ragsite",
        "SECURE_SSL_REDIRECT": "true",
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "SECURE_HSTS_SECONDS": "31536000",
    }


def _check_deploy(environment: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    environment = {
        **environment,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_production(tmp_path: Path) -> None:
    result = _check_deploy(_production_environment(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "warning"),
    [
        ("SESSION_COOKIE_SECURE", "false", "security.W012"),
        ("CSRF_COOKIE_SECURE", "false", "security.W016"),
        ("SECURE_SSL_REDIRECT", "false", "security.W008"),
        ("SECURE_HSTS_SECONDS", "0", "security.W004"),
        ("DEBUG", "true", "security.W018"),
        ("SECRET_KEY", "short", "security.W009"),
    ],
)
def test_check_deploy_fails_without_each_production_setting(
    tmp_path: Path, variable: str, value: str, warning: str
) -> None:
    """The clean result above comes from the environment, not from a check that cannot fail."""
    result = _check_deploy({**_production_environment(), variable: value}, tmp_path)
    assert result.returncode != 0
    assert warning in result.stdout + result.stderr


def test_https_is_enforced_behind_the_proxy(client: Client, settings: Any) -> None:
    """TLS ends at the proxy, which says so with X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER):
    plain requests are redirected, proxied HTTPS ones served, probes exempt."""
    settings.SECURE_SSL_REDIRECT = True
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301
    assert plain["Location"].startswith("https://")
    assert client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
    assert client.get("/healthz").status_code == 200


# --- secrets in the repository ---------------------------------------------------------

SECRET_PATTERNS = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"aws_secret_access_key\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}", re.IGNORECASE
    ),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "OpenAI-style API key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}"),
    "ragsite API token": re.compile(r"\brag_[A-Za-z0-9_-]{40,}"),
    "Django default secret": re.compile(r"django-insecure[-]"),  # [-]: no match on itself
    # A literal, not a reference: SECRET_KEY = "..." in code, SECRET_KEY=... on its own
    # line in .env, shell or YAML files; ${SECRET_KEY}, env.str(...) and "..." are fine.
    "hard-coded SECRET_KEY": re.compile(
        r"""SECRET_KEY["']?\s*[:=]\s*[rbuf]?["'][^"'\s]{12,}["']"""
        r"""|^\s*(?:export\s+)?SECRET_KEY\s*[:=]\s*(?![$"'])\S{12,}\s*$""",
        re.MULTILINE,
    ),
}


def _repository_files() -> list[Path]:
    """What git tracks, plus untracked files it would pick up (not the ignored ones)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=BASE_DIR,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    names = {name for name in listed.decode().split("\0") if name}
    return sorted(BASE_DIR / name for name in names if (BASE_DIR / name).is_file())


def _secrets_in(text: str, name: str) -> list[str]:
    return [
        f"{name}:{text.count(chr(10), 0, match.start()) + 1}: {kind}"
        for kind, pattern in SECRET_PATTERNS.items()
        for match in pattern.finditer(text)
    ]


def test_no_secret_is_committed() -> None:
    files = _repository_files()
    assert BASE_DIR / "ragsite" / "settings.py" in files
    found = [
        hit
        for path in files
        for hit in _secrets_in(
            path.read_bytes().decode("utf-8", errors="ignore"), str(path.relative_to(BASE_DIR))
        )
    ]
    assert not found, "secrets in the repository:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "leak",
    [
        "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEow",
        "-----BEGIN " + "OPENSSH PRIVATE KEY-----",
        "aws_access_key_id = " + "AKIA" + "IOSFODNN7EXAMPLE",
        "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
        "SECRET_KEY = '" + "x8#k2!" * 5 + "'",
        "SECRET_KEY: " + "a" * 40,
        "SECRET_KEY=" + "hunter2hunter2hunter2",
        "token = 'rag_" + "A" * 43 + "'",
        "LLM_API_KEY=sk-" + "b" * 40,
    ],
)
def test_the_secret_scan_finds_a_leak(leak: str) -> None:
    """The scan above can fail: each of these (built at run time, so this file holds
    none of them) is reported."""
    assert _secrets_in(f"# a file someone forgot\n{leak}\n", "forgotten.txt")


@pytest.mark.parametrize(
    "harmless",
    [
        'SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret()',
        "SECRET_KEY: ${SECRET_KEY:?set SECRET_KEY}",
        "SECRET_KEY=",
        "export POSTGRES_PASSWORD=... SECRET_KEY=... ALLOWED_HOSTS=search.example.org",
    ],
)
def test_the_secret_scan_ignores_references_to_secrets(harmless: str) -> None:
    assert not any(p.search(harmless) for p in SECRET_PATTERNS.values())


# --- HTML escaping of document content ---------------------------------------------------

PAYLOAD_SCRIPT = "<script>alert('xss')</script>"
PAYLOAD_IMAGE = "<img src=x onerror=alert(2)>"
HOSTILE = (
    f"Aspirin notes. {PAYLOAD_SCRIPT} The dose is low. {PAYLOAD_IMAGE} Aspirin prevents clots."
)


@pytest.fixture
def hostile_document(ingest: Any, staff_user: Any) -> Document:
    collection = CollectionFactory.create(owner=staff_user, is_public=True)
    [document] = ingest(
        collection,
        {f"notes{PAYLOAD_IMAGE}.txt": HOSTILE},
        title=f"Title {PAYLOAD_SCRIPT}",
        metadata={"note": PAYLOAD_IMAGE},
    )
    assert document.status == Document.Status.READY
    return document


def _assert_escaped(html: str) -> None:
    """No payload as markup; and the page does show the content (escaped), so the check
    is not passing on a page that simply left it out."""
    lowered = html.lower()
    assert "<script>alert(" not in lowered
    assert "<img src=x onerror" not in lowered
    assert "&lt;script&gt;alert(" in lowered or "&lt;img src=x onerror=alert(2)&gt;" in lowered


@pytest.mark.parametrize(
    "page",
    [
        "/?q=aspirin+clots",
        "/documents/{pk}/",
        "/admin/documents/document/{pk}/change/",
        "/admin/documents/document/",
    ],
)
def test_document_content_is_escaped_where_shown(
    client: Client, staff_user: Any, hostile_document: Document, page: str
) -> None:
    client.force_login(staff_user)
    response = client.get(page.format(pk=hostile_document.pk))
    assert response.status_code == 200
    _assert_escaped(response.content.decode())


def test_search_api_snippet_is_escaped_html(hostile_document: Document) -> None:
    response = APIClient().post(
        "/api/v1/search/", {"query": "aspirin clots", "mode": "keyword"}, format="json"
    )
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert PAYLOAD_SCRIPT in result["text"]  # the text itself is data, returned as is
    snippet = result["snippet"].lower()
    assert "<script" not in snippet and "<img" not in snippet
    assert "<mark>" in snippet


# --- originals -------------------------------------------------------------------------

GENERATED_NAME = re.compile(r"^originals/[0-9a-f]{32}(?:\.[a-z0-9]{1,9})?$")


@pytest.mark.parametrize(
    "filename",
    ["page.html", "../../etc/passwd.html", 'evil"; filename=x.html', "script<b>.svg.html"],
)
def test_originals_are_stored_under_generated_names_and_downloaded_as_attachments(
    user: Any, collection: Collection, filename: str
) -> None:
    _, secret = token_create(user=user, name="upload")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    content = b"<html><body><script>alert(1)</script><p>Hello</p></body></html>"
    upload = SimpleUploadedFile(filename, content, content_type="text/html")
    response = api.post(
        "/api/v1/documents/", {"collection": collection.slug, "file": upload}, format="multipart"
    )
    assert response.status_code == 202, response.content
    document = Document.objects.get(pk=response.json()["id"])

    stored = document.original.name
    assert GENERATED_NAME.match(stored), stored
    assert Path(document.original.path).resolve().is_relative_to(Path(settings.MEDIA_ROOT))
    assert Path(document.original.path).read_bytes() == content

    site = Client()
    site.force_login(user)
    for download in (
        api.get(f"/api/v1/documents/{document.pk}/original/"),
        site.get(f"/documents/{document.pk}/original/"),
    ):
        assert download.status_code == 200
        assert download["Content-Disposition"].startswith("attachment;")
        assert "\n" not in download["Content-Disposition"]
        assert download["X-Content-Type-Options"] == "nosniff"
        assert download["Content-Type"] == "application/octet-stream"
        assert download.getvalue() == content


# --- the admin -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/admin/", "/admin/documents/document/", "/admin/documents/document/upload/"]
)
def test_only_staff_reach_the_admin(client: Client, user: Any, staff_user: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")

    client.force_login(user)  # signed in, not staff
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")

    client.force_login(staff_user)
    assert client.get(path).status_code == 200


def test_a_non_staff_password_does_not_open_the_admin(client: Client, user: Any) -> None:
    response = client.post(
        "/admin/login/?next=/admin/", {"username": user.username, "password": PASSWORD}
    )
    assert response.status_code == 200  # the form again, with an error
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302

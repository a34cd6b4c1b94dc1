from __future__ import annotations

from django.test import Client


def test_healthz_answers_without_auth(db: None) -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_database_and_migrations(db: None) -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_api_docs_are_served_offline(db: None) -> None:
    client = Client()
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/documents/" in schema.content
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    # The Swagger UI assets come from our own static files (drf-spectacular-sidecar).
    assert b"drf_spectacular_sidecar" in docs.content
    assert b"cdn." not in docs.content


def test_openapi_schema_is_valid_and_complete(db: None, tmp_path: object) -> None:
    """Every endpoint, parameter and error resolves in the schema (no guessed types)."""
    from pathlib import Path

    from django.core.management import call_command

    path = Path(str(tmp_path)) / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    text = path.read_text()
    for endpoint in ["/api/v1/search/", "/api/v1/documents/{id}/content/", "/api/v1/tokens/"]:
        assert endpoint in text


def test_readyz_answers_503_with_retry_after_while_the_database_is_down() -> None:
    """A process whose database does not answer (a closed port): not ready, and says
    when to ask again, as docs/reliability.md promises; so does the throttled page."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    from tests.helpers.ports import free_port

    code = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client().get('/readyz')\n"
        "print(r.status_code, r.get('Retry-After'), r.json()['status'])\n"
        # The search page's throttle needs the database too: still the 503, not a 500.
        "r = Client().get('/', {'q': 'aspirin'})\n"
        "print(r.status_code, r.get('Retry-After'))\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ragsite.settings",
        "DATABASE_URL": f"postgres://nobody:nothing@127.0.0.1:{free_port()}/none",
        "ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["503", "5", "database", "unavailable", "503", "5"]

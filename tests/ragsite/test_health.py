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

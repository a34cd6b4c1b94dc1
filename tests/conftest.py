"""Shared fixtures. The database is the embedded PostgreSQL + pgvector server (or the one
DATABASE_URL names), started once per test session; pytest-django creates a test
database on it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from tests.factories import CollectionFactory, UserFactory


@pytest.fixture(scope="session")
def embedded_postgres() -> Any:
    options = settings.DATABASES["default"].get("OPTIONS", {})
    if "embedded_pgdata" not in options:
        return None  # DATABASE_URL is set: use that server
    from ragsite.embedded_db import ensure_server

    return ensure_server(
        Path(options["embedded_pgdata"]), database=settings.DATABASES["default"]["NAME"]
    )


@pytest.fixture(scope="session", autouse=True)
def _embedding_export() -> None:
    """EMBEDDING_BACKEND=onnx (the default) serves the int8 export `manage.py
    prepare_models` makes: once (about a minute) per checkout, then kept in the var folder;
    the servers and workers tests start find it there."""
    if settings.EMBEDDING_BACKEND == "onnx":
        from documents.embedding.export import export_prepare

        export_prepare()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database per pytest process, so two runs on one server never collide."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(suffix=str(os.getpid()))


@pytest.fixture(scope="session")
def django_db_setup(embedded_postgres: Any, django_db_setup: None) -> Iterator[None]:
    yield


@pytest.fixture(autouse=True)
def _test_settings(tmp_path_factory: pytest.TempPathFactory, settings: Any) -> None:
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
    # Tests send bursts from one client; the throttle tests set their own low rates.
    settings.API_THROTTLE_ANON = settings.API_THROTTLE_USER = "100000/minute"
    # The manifest storage needs `collectstatic`; tests render pages without it.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def user(db: None) -> Any:
    return UserFactory.create()


@pytest.fixture
def staff_user(db: None) -> Any:
    return UserFactory.create(is_staff=True, is_superuser=True)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def collection(db: None, user: Any) -> Any:
    return CollectionFactory.create(owner=user)


@pytest.fixture
def public_collection(db: None) -> Any:
    return CollectionFactory.create(is_public=True)


def ingest_files(collection: Any, files: Mapping[str, bytes | str], **kwargs: Any) -> list[Any]:
    """Upload files and process them in this process, through the real pipeline."""
    from django.core.files.base import ContentFile

    from documents.models import Document
    from documents.pipeline import documents_process
    from documents.services import document_upload

    ids = []
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        result = document_upload(
            collection=collection,
            user=None,
            file=ContentFile(data, name=name),
            enqueue=False,
            **kwargs,
        )
        ids.append(result.document.pk)
    documents_process(document_ids=ids)
    return list(Document.objects.filter(pk__in=ids).order_by("pk"))


@pytest.fixture
def ingest(db: None) -> Any:
    return ingest_files


@pytest.fixture
def start_worker(
    transactional_db: None, settings: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Any]:
    """Start real `manage.py qcluster` workers on the test database: `start(**env)`.

    They are stopped (whole process group) before `transactional_db` flushes the
    database; their output is printed when the test failed.
    """
    from tests.helpers.worker import Worker, database_url, show_output_if_failed

    workers: list[Worker] = []
    failures_before = request.session.testsfailed

    def start(**extra_env: str) -> Worker:
        worker = Worker(
            database_url=database_url(),
            media_root=Path(settings.MEDIA_ROOT),
            log_path=tmp_path / f"worker-{len(workers) + 1}.log",
            extra_env=extra_env,
        )
        workers.append(worker)
        worker.wait_ready(timeout=60)
        return worker

    yield start
    for worker in workers:
        worker.stop()
    show_output_if_failed(request, failures_before, workers)

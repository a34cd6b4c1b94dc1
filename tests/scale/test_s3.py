"""Originals on object storage (MEDIA_STORAGE=s3) against a real S3 API server on
loopback: upload, download, new content, re-processing, delete and the orphan sweep
all go through the bucket, and a worker with its own empty media folder processes an
original it did not upload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from documents.models import Document
from documents.pipeline import documents_process
from documents.stored_files import files_sweep_orphaned
from tests.helpers.worker import wait_until
from tests.scale.s3 import S3Server

pytestmark = pytest.mark.slow

TEXT = b"Volcanoes erupt lava and ash. Magma rises through the crust."


def _upload(client: APIClient, collection: Any, name: str, data: bytes) -> int:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "file": SimpleUploadedFile(name, data)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return int(response.json()["id"])


def _download(client: APIClient, pk: int) -> bytes:
    response = client.get(f"/api/v1/documents/{pk}/original/")
    assert response.status_code == 200, response.content
    return bytes(response.getvalue())  # a FileResponse: its streamed body, joined


def _no_local_originals(settings: Any) -> bool:
    folder = Path(settings.MEDIA_ROOT) / "originals"
    return not folder.exists() or not any(folder.iterdir())


def test_originals_round_trip_through_the_bucket(
    s3_media: dict[str, str],
    s3_server: S3Server,
    user_client: APIClient,
    collection: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    bucket = s3_media["AWS_STORAGE_BUCKET_NAME"]
    pk = _upload(user_client, collection, "volcano.txt", TEXT)
    (key,) = s3_server.keys(bucket)
    assert key.startswith("originals/") and _no_local_originals(settings)

    documents_process(document_ids=[pk])  # reads the original back from the bucket
    document = Document.objects.get(pk=pk)
    assert document.status == "ready" and document.chunks.count() >= 1
    assert _download(user_client, pk) == TEXT

    new = b"Glaciers carve valleys out of rock over thousands of years."
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.put(
            f"/api/v1/documents/{pk}/content/",
            {"text": new.decode()},
            format="json",
        )
    assert response.status_code == 202, response.content
    (new_key,) = s3_server.keys(bucket)  # the old version's object went after the commit
    assert new_key != key
    documents_process(document_ids=[pk])
    assert _download(user_client, pk) == new

    response = user_client.post(f"/api/v1/documents/{pk}/reembed/")
    assert response.status_code == 202, response.content
    documents_process(document_ids=[pk])
    document.refresh_from_db()
    assert document.status == "ready"
    assert "Glaciers" in document.chunks.get().text

    with django_capture_on_commit_callbacks(execute=True):
        assert user_client.delete(f"/api/v1/documents/{pk}/").status_code == 204
    assert s3_server.keys(bucket) == []


def test_the_orphan_sweep_lists_the_bucket(
    s3_media: dict[str, str], s3_server: S3Server, user_client: APIClient, collection: Any
) -> None:
    from datetime import timedelta

    bucket = s3_media["AWS_STORAGE_BUCKET_NAME"]
    kept = _upload(user_client, collection, "kept.txt", TEXT)
    s3_server.client().put_object(Bucket=bucket, Key="originals/orphan.txt", Body=b"left over")
    assert files_sweep_orphaned(min_age=timedelta(0)) == 1
    assert s3_server.keys(bucket) == [Document.objects.get(pk=kept).original.name]


def test_a_missing_object_is_a_404_not_a_500(
    s3_media: dict[str, str], s3_server: S3Server, user_client: APIClient, collection: Any
) -> None:
    pk = _upload(user_client, collection, "gone.txt", TEXT)
    bucket = s3_media["AWS_STORAGE_BUCKET_NAME"]
    for key in s3_server.keys(bucket):
        s3_server.client().delete_object(Bucket=bucket, Key=key)
    assert user_client.get(f"/api/v1/documents/{pk}/original/").status_code == 404


def test_a_worker_reads_an_original_it_did_not_upload(
    s3_media: dict[str, str],
    start_worker: Any,
    user_client: APIClient,
    collection: Any,
    tmp_path: Path,
    settings: Any,
) -> None:
    elsewhere = tmp_path / "other-machine-media"  # the worker's own, empty media folder
    elsewhere.mkdir()
    worker = start_worker(**s3_media, MEDIA_ROOT=str(elsewhere))
    pk = _upload(user_client, collection, "volcano.txt", TEXT)
    wait_until(
        lambda: Document.objects.get(pk=pk).status in ("ready", "failed"),
        timeout=120,
        what="the worker to process the upload",
        workers=[worker],
    )
    document = Document.objects.get(pk=pk)
    assert document.status == "ready", document.error
    assert document.chunks.count() >= 1
    assert not (elsewhere / "originals").exists() and _no_local_originals(settings)

"""Progress a user can watch: chunks embedded of the total while a document is processed
(committed as it happens, so another connection sees it move), the upload batch's
n of N with its time left, and the notice when no worker runs — through the document
API, with a real worker and without one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from documents import pipeline
from documents.models import Document, UploadBatch, WorkerBeat
from documents.pipeline import documents_process
from documents.progress import batch_create, batch_progress
from documents.services import document_upload
from documents.tasks import sweep_stuck_documents
from documents.workers import worker_notice
from tests.factories import DocumentFactory
from tests.helpers.worker import Worker, wait_until

LONG_TEXT = "\n\n".join(
    f"Section {i}. Glaciers carve valleys as the ice grinds bedrock, step {i}. " * 12
    for i in range(10)
)


def _upload(collection: Any, name: str, text: str, **kwargs: Any) -> Document:
    result = document_upload(
        collection=collection,
        user=None,
        file=ContentFile(text.encode(), name=name),
        enqueue=False,
        **kwargs,
    )
    return result.document


def _seen_from_another_connection(document_id: int) -> tuple[str, str, int, int]:
    """Read the row on a connection of its own (a thread gets one): only committed
    values are visible there."""
    seen: list[tuple[str, str, int, int]] = []

    def read() -> None:
        from django.db import connection

        try:
            seen.append(
                Document.objects.filter(pk=document_id)
                .values_list("status", "progress_phase", "progress_done", "progress_total")
                .get()
            )
        finally:
            connection.close()

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return seen[0]


@pytest.mark.django_db(transaction=True)
def test_each_embedding_batch_is_reported_and_visible_to_other_connections_at_once(
    collection: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.EMBEDDING_BATCH_SIZE = 4
    document = _upload(collection, "glaciers.txt", LONG_TEXT)
    snapshots: list[tuple[str, str, int, int]] = []
    real_embed = pipeline.embed_texts

    def embed_and_look(texts: list[str], **kwargs: Any) -> Any:
        # Before each batch is embedded: what does a reader (the admin, the API) see now?
        snapshots.append(_seen_from_another_connection(document.pk))
        return real_embed(texts, **kwargs)

    monkeypatch.setattr(pipeline, "embed_texts", embed_and_look)
    documents_process(document_ids=[document.pk])

    document.refresh_from_db()
    assert document.status == "ready", document.error
    total = document.chunk_count
    assert total > 8  # several batches of 4
    assert len(snapshots) == -(-total // 4)
    assert all(s[:2] == ("processing", "embedding") for s in snapshots)
    assert [s[3] for s in snapshots] == [total] * len(snapshots)
    assert [s[2] for s in snapshots] == list(range(0, total, 4))
    # Settled: nothing in progress any more.
    assert (document.progress_phase, document.progress_done, document.progress_total) == (
        "",
        0,
        0,
    )


@pytest.mark.django_db
def test_the_api_shows_progress_only_while_processing(
    user_client: APIClient, collection: Any
) -> None:
    busy = DocumentFactory.create(
        collection=collection,
        status="processing",
        progress_phase="embedding",
        progress_done=12,
        progress_total=40,
    )
    body = user_client.get(f"/api/v1/documents/{busy.pk}/").json()
    assert body["progress"] == {"phase": "embedding", "done": 12, "total": 40}
    # Claimed, not yet chunked: the phase is known, the total not yet.
    just_claimed = DocumentFactory.create(collection=collection, status="processing")
    body = user_client.get(f"/api/v1/documents/{just_claimed.pk}/").json()
    assert body["progress"] == {"phase": "extracting", "done": 0, "total": 0}
    ready = DocumentFactory.create(collection=collection, status="ready")
    assert user_client.get(f"/api/v1/documents/{ready.pk}/").json()["progress"] is None


@pytest.mark.django_db
def test_a_batch_counts_its_documents_and_estimates_time_left_from_its_own_rate(
    collection: Any,
) -> None:
    batch = batch_create()
    documents = [
        _upload(collection, f"n{i}.txt", f"note {i} on moraines", batch=batch) for i in range(4)
    ]
    assert batch_progress(batch.pk) == batch_progress(str(batch.pk))
    waiting = batch_progress(batch.pk)
    assert waiting is not None
    assert (waiting.total, waiting.pending, waiting.ready, waiting.eta_seconds) == (4, 4, 0, None)

    now = timezone.now()
    UploadBatch.objects.filter(pk=batch.pk).update(started=now - timedelta(seconds=60))
    Document.objects.filter(pk=documents[0].pk).update(status="ready")
    Document.objects.filter(pk=documents[1].pk).update(status="failed")
    # Half of the third one's chunks are embedded.
    Document.objects.filter(pk=documents[2].pk).update(
        status="processing", progress_phase="embedding", progress_done=5, progress_total=10
    )
    progress = batch_progress(batch.pk, now=now)
    assert progress is not None
    assert (progress.ready, progress.failed, progress.processing, progress.pending) == (1, 1, 1, 1)
    # 2.5 documents' worth in 60 s: the remaining 1.5 take 36 s.
    assert progress.eta_seconds == 36
    assert not progress.finished

    Document.objects.filter(pk__in=[d.pk for d in documents[2:]]).update(status="ready")
    done = batch_progress(batch.pk, now=now)
    assert done is not None and done.finished and done.eta_seconds == 0


@pytest.mark.django_db(transaction=True)
def test_a_workers_claim_starts_the_batch_clock_and_the_api_shows_the_batch(
    user_client: APIClient, collection: Any
) -> None:
    batch = batch_create()
    first = _upload(collection, "a.txt", "Drumlins are hills shaped by moving ice.", batch=batch)
    second = _upload(collection, "b.txt", "Eskers are ridges left by meltwater.", batch=batch)
    body = user_client.get(f"/api/v1/documents/{first.pk}/").json()
    assert body["batch"]["id"] == str(batch.pk)
    assert (body["batch"]["total"], body["batch"]["pending"]) == (2, 2)
    assert body["batch"]["eta_seconds"] is None
    assert UploadBatch.objects.get(pk=batch.pk).started is None

    documents_process(document_ids=[first.pk])
    assert UploadBatch.objects.get(pk=batch.pk).started is not None
    body = user_client.get(f"/api/v1/documents/{second.pk}/").json()
    assert (body["batch"]["ready"], body["batch"]["pending"]) == (1, 1)
    assert body["batch"]["eta_seconds"] is not None and body["batch"]["eta_seconds"] >= 0


@pytest.mark.django_db
def test_every_api_upload_is_a_batch_of_its_own(user_client: APIClient, collection: Any) -> None:
    response = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "file": SimpleUploadedFile("till.txt", b"Till is rock.")},
        format="multipart",
    )
    assert response.status_code == 202
    batch = response.json()["document"]["batch"]
    assert batch["total"] == 1 and batch["pending"] == 1 and not batch["finished"]


def _age(document: Document, seconds: int) -> None:
    Document.objects.filter(pk=document.pk).update(
        updated=timezone.now() - timedelta(seconds=seconds)
    )


@pytest.mark.django_db
def test_without_a_worker_a_waiting_document_says_why(
    user_client: APIClient, collection: Any, settings: Any
) -> None:
    settings.WORKER_STALE_SECONDS = 180
    document = _upload(collection, "cirque.txt", "A cirque is a bowl carved by a glacier.")
    # Just uploaded: a running worker would not have taken it yet either.
    assert user_client.get(f"/api/v1/documents/{document.pk}/").json()["worker_notice"] is None

    _age(document, 30)
    notice = user_client.get(f"/api/v1/documents/{document.pk}/").json()["worker_notice"]
    assert notice["worker_seen_at"] is None
    assert notice["message"].startswith("No worker has run yet")
    assert "python manage.py qcluster" in notice["message"]

    # A worker last seen long ago: the notice says since when.
    WorkerBeat.objects.create(name="qcluster", seen_at=timezone.now() - timedelta(hours=2))
    notice = user_client.get(f"/api/v1/documents/{document.pk}/").json()["worker_notice"]
    assert notice["worker_seen_at"] is not None
    assert notice["message"].startswith("No worker has run since ")

    # An idle worker runs the sweep every minute, which counts as being seen.
    sweep_stuck_documents()
    assert user_client.get(f"/api/v1/documents/{document.pk}/").json()["worker_notice"] is None


@pytest.mark.django_db
def test_a_worker_busy_with_a_long_task_counts_as_running(collection: Any, settings: Any) -> None:
    """One worker embedding a large document for many minutes runs no sweep meanwhile;
    the document's fresh heartbeat shows it is alive."""
    waiting = _upload(collection, "arete.txt", "An arete is a thin ridge between two cirques.")
    _age(waiting, 30)
    WorkerBeat.objects.create(name="qcluster", seen_at=timezone.now() - timedelta(hours=1))
    assert worker_notice() is not None
    DocumentFactory.create(collection=collection, status="processing", heartbeat_at=timezone.now())
    assert worker_notice() is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_with_a_real_worker_running_there_is_no_notice(
    start_worker: Callable[..., Worker], user_client: APIClient, collection: Any
) -> None:
    worker = start_worker()
    response = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "file": SimpleUploadedFile("fjord.txt", b"A fjord.")},
        format="multipart",
    )
    document_id = response.json()["id"]
    wait_until(
        lambda: Document.objects.get(pk=document_id).status in ("ready", "failed"),
        timeout=90,
        what="the worker to process the upload",
        workers=[worker],
    )
    assert WorkerBeat.objects.get(name="qcluster").seen_at > timezone.now() - timedelta(minutes=1)
    # A document waiting a while (its task lost, say) is not blamed on a missing worker.
    waiting = _upload(collection, "kame.txt", "A kame is a mound of sand and gravel.")
    _age(waiting, 30)
    assert user_client.get(f"/api/v1/documents/{waiting.pk}/").json()["worker_notice"] is None


@pytest.mark.django_db
def test_one_ingest_run_is_one_batch(tmp_path: Any) -> None:
    from django.core.management import call_command

    for i in range(3):
        (tmp_path / f"note-{i}.txt").write_text(f"Note {i}: nunataks are peaks above ice.")
    call_command("ingest", str(tmp_path), collection="nunataks", verbosity=0)
    batches = set(Document.objects.values_list("batch", flat=True))
    assert len(batches) == 1 and None not in batches
    progress = batch_progress(batches.pop())
    assert progress is not None and (progress.total, progress.pending) == (3, 3)

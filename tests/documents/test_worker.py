"""Ingestion through a REAL django-q2 worker (``manage.py qcluster``) in its own process:
uploads through the API are processed by it, and a worker killed in the middle of a
document neither publishes half a document nor loses it.

The worker talks to the test database on the same PostgreSQL server, so these tests use
committed transactions (``transaction=True``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from documents.chunking import chunk_document
from documents.extraction import extract
from documents.models import Chunk, CollectionTermStats, Document, PendingChunk
from tests.helpers.worker import Worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The worker's task time limit: long enough for a fresh worker to load the model and
# embed ~50 chunks on a busy two-core machine. The broker re-delivers a dead worker's
# task TASK_TIMEOUT + TASK_RETRY_MARGIN seconds after handing it out (settings.py); a
# document whose heartbeat stopped HEARTBEAT_STALE seconds ago counts as abandoned, and
# the stuck-document sweep (every minute) takes it back much sooner than that.
TASK_TIMEOUT = 25
TASK_RETRY_MARGIN = 15
HEARTBEAT_STALE = 8


@pytest.fixture
def worker_with_short_limits(start_worker: Callable[..., Worker]) -> Callable[..., Worker]:
    """Workers with this module's short task limits, so a killed one is noticed soon."""

    def start(**extra_env: str) -> Worker:
        limits = {
            "TASK_TIMEOUT": str(TASK_TIMEOUT),
            "TASK_RETRY_MARGIN": str(TASK_RETRY_MARGIN),
            "INGEST_HEARTBEAT_STALE_SECONDS": str(HEARTBEAT_STALE),
        }
        return start_worker(**{**limits, **extra_env})

    return start


def _upload(client: APIClient, collection: Any, name: str, data: bytes) -> int:
    response = client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "file": SimpleUploadedFile(name, data)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _statuses(ids: list[int]) -> dict[int, str]:
    return dict(Document.objects.filter(pk__in=ids).values_list("pk", "status"))


def test_uploads_are_processed_by_a_real_worker(
    worker_with_short_limits: Callable[..., Worker], user_client: APIClient, collection: Any
) -> None:
    worker = worker_with_short_limits()
    text = "\n\n".join(
        f"Paragraph {i}: mitochondria produce ATP through oxidative phosphorylation, "
        f"step {i} of the respiratory chain." * 4
        for i in range(12)
    )
    first = _upload(user_client, collection, "cells.txt", text.encode())
    wait_until(
        lambda: _statuses([first])[first] in ("ready", "failed"),
        timeout=90,
        what="the uploaded document to be processed",
        workers=[worker],
    )
    document = Document.objects.get(pk=first)
    assert document.status == "ready", document.error
    assert document.chunk_count > 1
    ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    assert ordinals == list(range(document.chunk_count))
    detail = user_client.get(f"/api/v1/documents/{first}/").json()
    assert detail["status"] == "ready" and detail["chunk_count"] == document.chunk_count

    # Several small files at once: the worker takes them together and finishes them all.
    ids = [
        _upload(
            user_client,
            collection,
            f"note-{i}.md",
            f"# Note {i}\n\nGlycolysis step {i} turns glucose into pyruvate.".encode(),
        )
        for i in range(5)
    ]
    wait_until(
        lambda: set(_statuses(ids).values()) <= {"ready", "failed"},
        timeout=90,
        what="the batch of small documents",
        workers=[worker],
    )
    assert _statuses(ids) == dict.fromkeys(ids, "ready")
    assert Chunk.objects.filter(document_id__in=ids).count() == 5
    assert not PendingChunk.objects.exists()


def _long_text(paragraphs: int = 48) -> str:
    rng = random.Random(7)
    words = (
        "protein enzyme membrane energy transport signal receptor gene expression pathway "
        "molecule structure binding regulation ribosome nucleus kinase substrate"
    ).split()
    return "\n\n".join(
        f"Section {i}. " + " ".join(rng.choice(words) for _ in range(150)) + "."
        for i in range(paragraphs)
    )


@pytest.mark.timeout(400)
def test_a_worker_killed_mid_document_publishes_nothing_and_a_new_one_finishes_it_soon(
    worker_with_short_limits: Callable[..., Worker], user_client: APIClient, collection: Any
) -> None:
    from documents.pipeline import documents_process
    from documents.queue import ensure_periodic_schedules

    # A long task limit: the broker's re-delivery (TASK_TIMEOUT + TASK_RETRY_MARGIN after
    # the task was handed out) comes far too late to be what recovers the document.
    task_timeout = 300
    ensure_periodic_schedules()  # the stuck-document sweep (flushed by earlier tests)
    batch_size = 4
    data = _long_text().encode()
    clean_spans = chunk_document(
        extract(data, filename="long.txt"),
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        min_tokens=settings.CHUNK_MIN_TOKENS,
    )
    clean_count = len(clean_spans)
    assert clean_count >= 40  # many batches of 4: the kill lands between two of them

    limits = {"TASK_TIMEOUT": str(task_timeout), "EMBEDDING_BATCH_SIZE": str(batch_size)}
    first = worker_with_short_limits(**limits)
    document_id = _upload(user_client, collection, "long.txt", data)
    staged = wait_until(
        lambda: PendingChunk.objects.filter(document_id=document_id).count() >= batch_size,
        timeout=90,
        what="the first batch of embeddings to be stored",
        workers=[first],
    )
    first.kill()
    killed = time.monotonic()
    assert staged

    # Nothing half-done is visible: no chunks, not ready; the stored batches are kept.
    document = Document.objects.get(pk=document_id)
    assert document.status == "processing"
    assert document.heartbeat_at is not None
    assert Chunk.objects.filter(document_id=document_id).count() == 0
    kept = PendingChunk.objects.filter(document_id=document_id).count()
    assert batch_size <= kept < clean_count

    # Recovery, with no hand-made database edits: a new worker starts at once; the dead
    # worker's heartbeat goes stale after HEARTBEAT_STALE seconds, the sweep (every
    # minute, checked every 30 s by the scheduler) queues the document again, and the new
    # worker resumes from the stored batches.
    second = worker_with_short_limits(**limits)
    wait_until(
        lambda: _statuses([document_id])[document_id] in ("ready", "failed"),
        timeout=240,
        what="the new worker to finish the document",
        workers=[first, second],
    )
    recovered = time.monotonic() - killed
    document.refresh_from_db()
    assert document.status == "ready", document.error
    # Sooner than the broker could have re-delivered the task, by minutes (it used to
    # take the task timeout plus its margin: 11 minutes by default).
    assert recovered < task_timeout - 60, recovered
    print(f"\nthe killed worker's document was ready {recovered:.0f} s after the kill")
    assert "swept 1 document(s)" in second.output()
    chunks = list(
        Chunk.objects.filter(document_id=document_id)
        .order_by("ordinal")
        .values_list("ordinal", "char_start", "char_end")
    )
    # Exactly the chunks a clean, uninterrupted run makes: no gap, no duplicate.
    assert [ordinal for ordinal, _, _ in chunks] == list(range(clean_count))
    assert [(start, end) for _, start, end in chunks] == [(s.start, s.end) for s in clean_spans]
    assert document.chunk_count == clean_count
    assert not PendingChunk.objects.filter(document_id=document_id).exists()

    # The dead worker's task is still due to be re-delivered by the broker: delivering it
    # (here, in this process) must neither add a second set of chunks nor count the
    # chunks twice in the keyword statistics.
    documents_process(document_ids=[document_id])
    texts = list(
        Chunk.objects.filter(document_id=document_id)
        .order_by("ordinal")
        .values_list("text", flat=True)
    )
    assert texts == [document.extracted_text[s.start : s.end] for s in clean_spans]
    assert CollectionTermStats.objects.get(collection=collection).chunk_count == clean_count

"""Status transitions (documents/lifecycle.py), called directly: claim, heartbeat, the
stuck sweep, retry with back-off, fail, and the user's retry / re-embed, with the API's
409 for a transition the status does not allow."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from rest_framework.test import APIClient

from documents.lifecycle import (
    DocumentStateError,
    claimable,
    document_fail,
    document_reembed,
    document_retry,
    document_retry_later,
    documents_claim,
    documents_reembed,
    documents_sweep_stuck,
    heartbeat,
)
from documents.models import Document
from tests.factories import CollectionFactory, DocumentFactory

Status = Document.Status
FAR = time.monotonic() + 3600  # a deadline that never passes during a test


def _doc(**fields: Any) -> Document:
    return DocumentFactory.create(collection=CollectionFactory.create(), **fields)


def _ago(seconds: float) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


@pytest.mark.django_db
def test_claim_takes_due_pending_and_abandoned_documents_only(settings: Any) -> None:
    settings.INGEST_HEARTBEAT_STALE_SECONDS = 60
    due = _doc(status=Status.PENDING)
    later = _doc(status=Status.PENDING, retry_at=timezone.now() + timedelta(minutes=5))
    alive = _doc(status=Status.PROCESSING, processing_started=_ago(3600), heartbeat_at=_ago(5))
    dead = _doc(status=Status.PROCESSING, processing_started=_ago(90), heartbeat_at=_ago(61))
    ready = _doc(status=Status.READY)
    ids = [d.pk for d in (due, later, alive, dead, ready)]
    assert set(Document.objects.filter(claimable()).values_list("pk", flat=True)) == {
        due.pk,
        dead.pk,
    }

    claimed = documents_claim(ids)
    assert [d.pk for d in claimed] == sorted([due.pk, dead.pk])
    for document in claimed:
        document.refresh_from_db()
        assert document.status == Status.PROCESSING and document.attempts == 1
        assert document.heartbeat_at == document.processing_started
        assert document.heartbeat_at is not None
        assert timezone.now() - document.heartbeat_at < timedelta(seconds=5)
    # A claim is not taken twice.
    assert documents_claim(ids) == []


@pytest.mark.django_db
def test_sweep_goes_by_the_heartbeat_not_by_the_task_timeout(settings: Any) -> None:
    settings.INGEST_HEARTBEAT_STALE_SECONDS = 60
    settings.INGEST_MAX_ATTEMPTS = 3
    # Claimed long ago but still beating: a slow document, not a dead worker.
    slow = _doc(
        status=Status.PROCESSING, attempts=1, processing_started=_ago(3600), heartbeat_at=_ago(10)
    )
    # Claimed a moment ago by a worker that died at once: well within TASK_TIMEOUT.
    dead = _doc(
        status=Status.PROCESSING, attempts=1, processing_started=_ago(70), heartbeat_at=_ago(70)
    )
    exhausted = _doc(
        status=Status.PROCESSING, attempts=3, processing_started=_ago(70), heartbeat_at=_ago(70)
    )
    OrmQ.objects.all().delete()
    assert documents_sweep_stuck() == 2
    slow.refresh_from_db()
    dead.refresh_from_db()
    exhausted.refresh_from_db()
    assert slow.status == Status.PROCESSING
    assert dead.status == Status.PENDING and dead.heartbeat_at is None
    assert exhausted.status == Status.FAILED and "worker stopped" in exhausted.error


@pytest.mark.django_db(transaction=True)
def test_heartbeat_keeps_a_claim_alive_while_the_block_runs(settings: Any) -> None:
    settings.INGEST_HEARTBEAT_STALE_SECONDS = 4  # beats every second
    document = _doc(status=Status.PENDING)
    (claimed,) = documents_claim([document.pk])
    # Pretend the claim is old: without a beat it would be reclaimed now.
    Document.objects.filter(pk=document.pk).update(heartbeat_at=_ago(30))
    with heartbeat([claimed]):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            beat = Document.objects.get(pk=document.pk).heartbeat_at
            if beat is not None and timezone.now() - beat < timedelta(seconds=3):
                break
            time.sleep(0.2)
    beat = Document.objects.get(pk=document.pk).heartbeat_at
    assert beat is not None and timezone.now() - beat < timedelta(seconds=3)
    assert not Document.objects.filter(claimable(), pk=document.pk).exists()
    # After the block no beat comes: the claim goes stale.
    stopped = Document.objects.get(pk=document.pk).heartbeat_at
    time.sleep(1.5)
    assert Document.objects.get(pk=document.pk).heartbeat_at == stopped


@pytest.mark.django_db
def test_retry_later_backs_off_then_fails_and_never_overrules_a_new_claim(
    settings: Any,
) -> None:
    settings.INGEST_MAX_ATTEMPTS = 2
    settings.INGEST_RETRY_BASE_SECONDS = 30
    document = _doc(status=Status.PENDING)
    (claimed,) = documents_claim([document.pk])
    document_retry_later(claimed, RuntimeError("model busy"), deadline=FAR)
    document.refresh_from_db()
    assert document.status == Status.PENDING and document.error == "RuntimeError: model busy"
    assert document.retry_at is not None
    assert timedelta(seconds=25) < document.retry_at - timezone.now() <= timedelta(seconds=30)
    assert Schedule.objects.filter(name__startswith=f"retry document {document.pk}").exists()

    Document.objects.filter(pk=document.pk).update(retry_at=None)
    (claimed,) = documents_claim([document.pk])
    document_retry_later(claimed, RuntimeError("model busy"), deadline=FAR)
    document.refresh_from_db()
    assert document.status == Status.FAILED
    assert document.error == "RuntimeError: model busy (gave up after 2 attempts)"

    # A worker whose claim was taken over (it went stale) changes nothing.
    Document.objects.filter(pk=document.pk).update(status=Status.PENDING, attempts=0, error="")
    (stale,) = documents_claim([document.pk])
    Document.objects.filter(pk=document.pk).update(processing_started=timezone.now())
    document_fail(stale, "too late", deadline=FAR)
    document_retry_later(stale, RuntimeError("too late"), deadline=FAR)
    document.refresh_from_db()
    assert document.status == Status.PROCESSING and document.error == ""


@pytest.mark.django_db
def test_retry_is_for_failed_documents_and_reembed_for_settled_ones() -> None:
    failed = _doc(status=Status.FAILED, error="boom", attempts=3)
    assert document_retry(document=failed).status == Status.PENDING
    failed.refresh_from_db()
    assert (failed.attempts, failed.error) == (0, "")

    ready = _doc(status=Status.READY)
    with pytest.raises(DocumentStateError, match="cannot retry a document that is ready"):
        document_retry(document=ready)
    assert document_reembed(document=ready).status == Status.PENDING
    assert document_reembed(document=_doc(status=Status.FAILED)).status == Status.PENDING
    for status in (Status.PENDING, Status.PROCESSING):
        busy = _doc(status=status)
        with pytest.raises(
            DocumentStateError, match=f"cannot re-embed a document that is {status}"
        ):
            document_reembed(document=busy)
        busy.refresh_from_db()
        assert busy.status == status


@pytest.mark.django_db
def test_bulk_reembed_queues_settled_documents_only() -> None:
    collection = CollectionFactory.create()
    ready = DocumentFactory.create(collection=collection, status=Status.READY)
    failed = DocumentFactory.create(collection=collection, status=Status.FAILED)
    busy = DocumentFactory.create(collection=collection, status=Status.PROCESSING)
    other = DocumentFactory.create(status=Status.READY)
    assert documents_reembed(collection=collection) == 2
    statuses = dict(Document.objects.values_list("pk", "status"))
    assert statuses == {
        ready.pk: Status.PENDING,
        failed.pk: Status.PENDING,
        busy.pk: Status.PROCESSING,
        other.pk: Status.READY,
    }


def test_the_api_answers_409_for_a_transition_the_status_forbids(
    user_client: APIClient, collection: Any
) -> None:
    ready = DocumentFactory.create(collection=collection, status=Status.READY)
    response = user_client.post(f"/api/v1/documents/{ready.pk}/retry/")
    assert response.status_code == 409, response.content
    assert "cannot retry a document that is ready" in response.json()["detail"]
    pending = DocumentFactory.create(collection=collection, status=Status.PENDING)
    response = user_client.post(f"/api/v1/documents/{pending.pk}/reembed/")
    assert response.status_code == 409, response.content
    assert "cannot re-embed a document that is pending" in response.json()["detail"]
    assert user_client.post(f"/api/v1/documents/{ready.pk}/reembed/").status_code == 202


def test_periodic_schedules_include_the_orphaned_file_sweep(db: None) -> None:
    from django_q.models import Schedule

    from documents.queue import ensure_periodic_schedules

    ensure_periodic_schedules()
    ensure_periodic_schedules()  # idempotent: one row per schedule
    funcs = sorted(Schedule.objects.values_list("func", flat=True))
    assert funcs == [
        "documents.tasks.sweep_orphaned_files",
        "documents.tasks.sweep_stuck_documents",
        "documents.tasks.sync_vector_indexes",
        "insights.tasks.evaluation_run_scheduled",
        "insights.tasks.query_log_sweep",
    ]

"""Every status change of a document, in one place.

    upload ──> PENDING ──claim──> PROCESSING ──finalize──> READY
                  ▲  ▲                │  │                   │
                  │  └──requeue───────┘  └──fail──> FAILED   │
                  │    (back-off, or at once                 │
                  │     after a lost database)               │
                  └────── retry (FAILED only), reembed (READY or FAILED) ──┘

* claim (`documents_claim`): PENDING whose back-off has passed, or PROCESSING whose
  worker died, becomes PROCESSING; `attempts` + 1; `processing_started` names the claim
  and `heartbeat_at` starts beating.
* While a worker holds a claim, `heartbeat` refreshes `heartbeat_at`. A claim whose
  heartbeat is older than `INGEST_HEARTBEAT_STALE_SECONDS` (the one staleness of this
  module) belongs to a dead worker: a re-delivered task may claim it again, and the
  sweep (`documents_sweep_stuck`, every minute) requeues it, or fails it when it used
  up its attempts.
* requeue / fail (`document_retry_later`, `document_fail`): only while our claim
  stands (`_ours`), so a worker that took over a stale claim is never overruled.
* retry (`document_retry`): a FAILED document, attempts start over. reembed
  (`document_reembed`, `documents_reembed`): a settled (READY or FAILED) document is
  chunked and embedded again; search keeps its current chunks until the new ones are in.
  Either refuses other states with `DocumentStateError`.
* Pending documents whose task was lost are requeued by the sweep (`_orphaned_pending`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from documents.embedding import EmbeddingError
from documents.models import Collection, Document
from documents.outage import database_lost, until_database_returns
from documents.progress import EXTRACTING, batches_mark_started, progress_cleared
from documents.queue import broker_queue_empty, enqueue_documents, schedule_retry

logger = logging.getLogger(__name__)
Status = Document.Status
SETTLED = (Status.READY, Status.FAILED)
# A retry scheduled for `updated + delay` must find its document claimable.
_CLOCK_SLACK = timedelta(seconds=2)
# A pending document this quiet, while the broker's queue is empty, has lost its task.
_ORPHAN_QUIET = timedelta(seconds=60)


class DocumentStateError(Exception):
    """A transition the document's current status does not allow (the API answers 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def stale_after() -> timedelta:
    """How long a claim may go without a heartbeat before its worker counts as dead."""
    return timedelta(seconds=settings.INGEST_HEARTBEAT_STALE_SECONDS)


def _abandoned(now: datetime) -> Q:
    cutoff = now - stale_after()
    # Rows claimed before heartbeats existed have none: their claim time stands in.
    return Q(status=Status.PROCESSING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, processing_started__lt=cutoff)
    )


def claimable() -> Q:
    """Documents a worker may take now: pending ones whose back-off has passed, and those
    whose worker stopped beating."""
    now = timezone.now()
    due = Q(retry_at__isnull=True) | Q(retry_at__lte=now + _CLOCK_SLACK)
    return (Q(status=Status.PENDING) & due) | _abandoned(now)


def documents_claim(document_ids: list[int]) -> list[Document]:
    """Mark pending (or abandoned) documents as ours, in one statement.

    Rows another worker holds right now, or that are done or deleted, are skipped.
    """
    with transaction.atomic():
        documents = list(
            Document.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("collection")
            .filter(claimable(), pk__in=document_ids)
            .order_by("pk")
        )
        now = timezone.now()
        Document.objects.filter(pk__in=[d.pk for d in documents]).update(
            status=Status.PROCESSING,
            attempts=F("attempts") + 1,
            processing_started=now,
            heartbeat_at=now,
            updated=now,
            **{**progress_cleared(), "progress_phase": EXTRACTING},
        )
        batches_mark_started(document_ids=[d.pk for d in documents])
    for document in documents:
        document.status = Status.PROCESSING
        document.attempts += 1
        document.processing_started = now
        document.heartbeat_at = now
    return documents


def _beat(claims: list[tuple[int, datetime | None]]) -> None:
    # SKIP LOCKED: a row locked by its own finalize (or by a test's open transaction)
    # is being worked on anyway, and waiting for it would stall the heartbeat.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE documents_document SET heartbeat_at = now()
            WHERE id IN (
                SELECT d.id FROM documents_document d
                JOIN unnest(%s::bigint[], %s::timestamptz[]) AS c(id, started)
                  ON d.id = c.id AND d.processing_started = c.started
                WHERE d.status = %s
                FOR UPDATE OF d SKIP LOCKED)
            """,
            [[pk for pk, _ in claims], [started for _, started in claims], Status.PROCESSING],
        )


@contextmanager
def heartbeat(documents: list[Document]) -> Iterator[None]:
    """Refresh the documents' heartbeat from a thread of our own while the block runs: a
    SIGKILLed or frozen worker stops beating, and its documents are taken back soon."""
    claims = [(d.pk, d.processing_started) for d in documents]
    stop = threading.Event()
    interval = max(1.0, settings.INGEST_HEARTBEAT_STALE_SECONDS / 4)

    def run() -> None:
        try:
            while not stop.wait(interval):
                try:
                    _beat(claims)
                except DatabaseError as exc:  # a restart: the next beat reconnects
                    logger.warning("heartbeat failed: %s", exc)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="document-heartbeat", daemon=True)
    if claims:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if claims:
            thread.join()


def _ours(document: Document) -> QuerySet[Document]:
    """The document while our claim on it stands. After a lost connection we cannot know
    whether the last commit (the one publishing the chunks) went through, and a worker
    that took over a stale claim must not be overruled."""
    return Document.objects.filter(
        pk=document.pk, status=Status.PROCESSING, processing_started=document.processing_started
    )


def documents_mark_ready(documents: list[Document], *, fields: list[str]) -> None:
    """PROCESSING -> READY, inside the transaction that swapped their chunks in; `fields`
    names what else the pipeline set on them."""
    now = timezone.now()
    for document in documents:
        document.status = Status.READY
        document.error = ""
        document.processing_started = None
        document.heartbeat_at = None
        document.updated = now
        for name, value in progress_cleared().items():
            setattr(document, name, value)
    Document.objects.bulk_update(
        documents,
        [
            "status",
            "error",
            "processing_started",
            "heartbeat_at",
            "updated",
            *progress_cleared(),
            *fields,
        ],
    )


def retry_delay(attempts: int) -> timedelta:
    """30 s, 2 min, 8 min, ... with the default base."""
    return timedelta(seconds=settings.INGEST_RETRY_BASE_SECONDS * 4 ** max(0, attempts - 1))


def document_fail(document: Document, reason: str, *, deadline: float) -> None:
    """PROCESSING -> FAILED: deterministic failures, and attempts used up."""
    failed = until_database_returns(
        lambda: _ours(document).update(
            status=Status.FAILED,
            error=reason[:2000],
            processing_started=None,
            heartbeat_at=None,
            updated=timezone.now(),
            **progress_cleared(),
        ),
        deadline=deadline,
    )
    if failed:
        logger.info("document %s failed: %s", document.pk, reason)


def document_fail_unreadable(document: Document, reason: str) -> None:
    """READY -> FAILED: a model change (documents/reembed.py) could not read the document
    again; it cannot move to the new model, and the switch must not wait for it."""
    Document.objects.filter(pk=document.pk, status=Status.READY).update(
        status=Status.FAILED, error=reason[:2000], updated=timezone.now(), **progress_cleared()
    )
    logger.info("document %s failed in a model change: %s", document.pk, reason)


def document_retry_later(document: Document, exc: Exception, *, deadline: float) -> None:
    """PROCESSING -> PENDING with back-off (or at once after a lost database), or FAILED
    once the attempts are used up."""
    reason = _describe(exc)
    if document.attempts >= settings.INGEST_MAX_ATTEMPTS:
        document_fail(
            document, f"{reason} (gave up after {document.attempts} attempts)", deadline=deadline
        )
        return
    logger.warning("document %s attempt %s failed: %s", document.pk, document.attempts, reason)
    # The database went away (a restart, a failover), not the document: once it answers
    # again the cause is gone, so queue the document again at once, without back-off.
    delay = timedelta(0) if database_lost(exc) else retry_delay(document.attempts)
    until_database_returns(
        lambda: _requeue(document, reason=reason, delay=delay), deadline=deadline
    )


@transaction.atomic
def _requeue(document: Document, *, reason: str, delay: timedelta) -> None:
    requeued = _ours(document).update(
        status=Status.PENDING,
        error=reason[:2000],
        processing_started=None,
        heartbeat_at=None,
        retry_at=timezone.now() + delay if delay else None,
        updated=timezone.now(),
        **progress_cleared(),
    )
    if not requeued:
        return
    if delay:
        schedule_retry(document_id=document.pk, delay=delay)
    else:
        enqueue_documents([(document.pk, document.size)])


def _describe(exc: Exception) -> str:
    if isinstance(exc, EmbeddingError):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"database error: {exc}".strip()
    return f"{type(exc).__name__}: {exc}"


# --- Asked for by a user ----------------------------------------------------------------


def _restart(document: Document, *, allowed: tuple[str, ...], verb: str) -> Document:
    """Queue a document again with fresh attempts, if its status is one of `allowed`."""
    with transaction.atomic():
        changed = Document.objects.filter(pk=document.pk, status__in=allowed).update(
            status=Status.PENDING,
            attempts=0,
            error="",
            retry_at=None,
            updated=timezone.now(),
            **progress_cleared(),
        )
        if not changed:
            current = Document.objects.filter(pk=document.pk).values_list("status", flat=True)
            status = current.first() or "deleted"
            raise DocumentStateError(
                f"cannot {verb} a document that is {status}; only a "
                f"{' or '.join(allowed)} one can be"
            )
        enqueue_documents([(document.pk, document.size)])
    document.refresh_from_db()
    return document


def document_retry(*, document: Document) -> Document:
    """FAILED -> PENDING: queue a failed document again; attempts start over."""
    return _restart(document, allowed=(Status.FAILED,), verb="retry")


def document_reembed(*, document: Document) -> Document:
    """READY or FAILED -> PENDING: chunk and embed the document again (after a change of
    model or chunk settings); search keeps its current chunks until the new ones are in."""
    return _restart(document, allowed=SETTLED, verb="re-embed")


def document_requeue_if_failed(document: Document) -> Document:
    """A failed document uploaded again is retried; any other is left as it is."""
    if document.status == Status.FAILED:
        try:
            return document_retry(document=document)
        except DocumentStateError:  # retried by someone else meanwhile
            document.refresh_from_db()
    return document


def documents_reembed(*, collection: Collection | None = None) -> int:
    """Queue every settled document (of a collection) to be chunked and embedded again.
    Pending and processing ones are about to be made with the current settings anyway."""
    queryset = Document.objects.filter(status__in=SETTLED)
    if collection is not None:
        queryset = queryset.filter(collection=collection)
    with transaction.atomic():
        rows = list(queryset.select_for_update().values_list("pk", "size"))
        Document.objects.filter(pk__in=[pk for pk, _ in rows]).update(
            status=Status.PENDING,
            attempts=0,
            error="",
            retry_at=None,
            updated=timezone.now(),
            **progress_cleared(),
        )
        enqueue_documents(rows)
    return len(rows)


# --- The periodic sweep -----------------------------------------------------------------


def documents_sweep_stuck() -> int:
    """Documents whose worker died (no heartbeat for `stale_after()`): requeue them, or
    fail them once they used up their attempts; also requeue pending documents that have
    no task (see `_orphaned_pending`). Each update re-checks the row, so a document
    another worker claimed meanwhile is left alone. Returns how many were swept."""
    now = timezone.now()
    stuck = Document.objects.filter(_abandoned(now))
    requeue = []
    swept = 0
    with transaction.atomic():
        for pk, size, attempts in stuck.values_list("pk", "size", "attempts"):
            row = stuck.filter(pk=pk, attempts=attempts)
            if attempts >= settings.INGEST_MAX_ATTEMPTS:
                swept += row.update(
                    status=Status.FAILED,
                    error=f"the worker stopped while processing it ({attempts} attempts)",
                    processing_started=None,
                    heartbeat_at=None,
                    updated=now,
                    **progress_cleared(),
                )
            elif row.update(
                status=Status.PENDING,
                retry_at=None,
                processing_started=None,
                heartbeat_at=None,
                updated=now,
                **progress_cleared(),
            ):
                swept += 1
                requeue.append((pk, size))
        orphans = _orphaned_pending()
        requeue.extend(orphans)
        swept += len(orphans)
        enqueue_documents(requeue)
    if swept:
        logger.info("swept %s document(s) back into the queue or to failed", swept)
    return swept


def _orphaned_pending() -> list[tuple[int, int]]:
    """Pending documents whose task was never queued (the database went away between
    the upload's commit and the enqueue) or was lost (Q_BROKER=redis: a dead worker's
    tasks in hand). Only looked for when the broker's queue is empty: then nothing is
    coming for them, and a backlog is not queued a second time every minute.
    Re-queueing one that does have a task is harmless anyway, since processing starts
    by claiming it."""
    if not broker_queue_empty():
        return []
    now = timezone.now()
    orphans = Document.objects.filter(status=Status.PENDING, updated__lt=now - _ORPHAN_QUIET)
    orphans = orphans.exclude(retry_at__gt=now)
    return list(orphans.values_list("pk", "size"))

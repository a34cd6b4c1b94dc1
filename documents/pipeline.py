"""extract -> chunk -> embed -> store, for a batch of documents. Called by the worker.

Read top to bottom: `documents_process` claims each document, extracts and chunks it,
embeds the chunks in batches (several documents share batches, so small documents do
not waste the model's time), stores each batch as soon as it is embedded (so a killed
worker resumes where it stopped), and finally swaps the new chunks in atomically. A
database restart in the middle is waited out, and the documents it cut off are queued
again at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from documents.chunking import ChunkSpan, chunk_document, contextual_header, embedding_text
from documents.embedding import EmbeddingError, active_model_name, embed_texts
from documents.extraction import ExtractedText, ExtractionError, extract
from documents.keyword_index import (
    bm25_params,
    bm25_sql,
    collections_needing_rebuild,
    keyword_add_documents,
    keyword_index_rebuild_collection,
    keyword_length_sql,
    keyword_unindex_documents,
    tsvector_sql,
)
from documents.models import Chunk, Document, PendingChunk
from documents.tokenizer import MODEL_MAX_TOKENS, SPECIAL_TOKENS

logger = logging.getLogger(__name__)
CONTEXT_MAX_TOKENS = 64
# A retry scheduled for `updated + delay` must find its document claimable.
_CLOCK_SLACK = timedelta(seconds=2)
_KILL_GRACE = timedelta(seconds=10)
# A task waits for a restarted database until this long before django-q2's time limit,
# then gives up and leaves its documents to the broker's re-delivery.
_OUTAGE_MARGIN_SECONDS = 5
Status = Document.Status
T = TypeVar("T")


@dataclass
class _Work:
    document: Document
    extracted: ExtractedText
    spans: list[ChunkSpan]
    fingerprint: str
    done: set[int] = field(default_factory=set)  # ordinals already in PendingChunk


def chunking_fingerprint(document: Document) -> str:
    """Names everything that decides a document's chunks and vectors."""
    parts = [
        document.sha256,
        active_model_name(),
        str(settings.CHUNK_MAX_TOKENS),
        str(settings.CHUNK_OVERLAP_TOKENS),
        str(settings.CHUNK_CONTEXT_HEADER),
        str(settings.CHUNK_CONTEXT_HEADER_MAX_TOKENS),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def documents_process(*, document_ids: list[int]) -> None:
    # Every database write below survives a database restart by waiting for the server
    # (until shortly before the task's time limit), so a restart costs a retry, not the
    # stuck-document sweep's wait.
    deadline = time.monotonic() + max(0, settings.Q_CLUSTER["timeout"] - _OUTAGE_MARGIN_SECONDS)
    works: list[_Work] = []
    for document in _until_database_returns(lambda: _claim(document_ids), deadline=deadline):
        try:
            works.append(_prepare(document))
        except ExtractionError as exc:
            # Deterministic: the same bytes fail the same way, so no automatic retry.
            _fail(document, str(exc), deadline=deadline)
        except Exception as exc:
            _retry_or_fail(document, exc, deadline=deadline)
    if not works:
        return
    try:
        _embed_and_stage(works)
    except Exception as exc:  # the model or the database failed: retry them all later
        for work in works:
            _retry_or_fail(work.document, exc, deadline=deadline)
        return
    try:
        done = _finalize(works)
    except Exception as exc:
        for work in works:
            _retry_or_fail(work.document, exc, deadline=deadline)
        return
    _until_database_returns(
        lambda: _rebuild_drifted(sorted({work.document.collection_id for work in done})),
        deadline=deadline,
    )


def _rebuild_drifted(collection_ids: list[int]) -> None:
    for collection_id in collections_needing_rebuild(collection_ids=collection_ids):
        with transaction.atomic():
            keyword_index_rebuild_collection(collection_id=collection_id, reanalyse=False)


def claimable() -> Q:
    """Documents a worker may take now: pending ones whose back-off has passed, and those
    whose worker vanished mid-way (the broker re-delivers a task after `retry` seconds;
    the stuck-document sweep does the same)."""
    now = timezone.now()
    due = Q(retry_at__isnull=True) | Q(retry_at__lte=now + _CLOCK_SLACK)
    # django-q2 kills a task a few seconds past its timeout, so a document processing for
    # longer than that has lost its worker (the broker's re-delivery comes later still).
    stale = now - timedelta(seconds=settings.Q_CLUSTER["timeout"]) - _KILL_GRACE
    return (Q(status=Status.PENDING) & due) | Q(
        status=Status.PROCESSING, processing_started__lt=stale
    )


def documents_process_pending(
    *, collection_id: int | None = None, group_size: int = 128, progress: Any = None
) -> int:
    """Process every claimable document in this process (no worker needed).

    Returns how many it took; documents whose retry is not due yet are left waiting.
    """
    taken = 0
    while True:
        queryset = Document.objects.filter(claimable())
        if collection_id is not None:
            queryset = queryset.filter(collection_id=collection_id)
        ids = list(queryset.order_by("id").values_list("id", flat=True)[:group_size])
        if not ids:
            return taken
        documents_process(document_ids=ids)
        taken += len(ids)
        if progress is not None:
            progress(len(ids))


def _claim(document_ids: list[int]) -> list[Document]:
    """Mark pending (or crashed mid-way) documents as ours, in one statement.

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
            updated=now,
        )
    for document in documents:
        document.status = Status.PROCESSING
        document.attempts += 1
        document.processing_started = now
    return documents


def _prepare(document: Document) -> _Work:
    with document.original.open("rb") as handle:
        data = handle.read()
    extracted = extract(data, filename=document.source_name or document.original.name)
    spans = chunk_document(
        extracted,
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
    )
    if not spans:
        raise ExtractionError("no extractable text")
    if not document.title and extracted.title:
        document.title = extracted.title[:500]
    document.mime_type = extracted.mime_type
    fingerprint = chunking_fingerprint(document)
    # Rows of an earlier, different run (content or settings changed) are stale.
    PendingChunk.objects.filter(document=document).exclude(fingerprint=fingerprint).delete()
    done = set(
        PendingChunk.objects.filter(document=document, fingerprint=fingerprint).values_list(
            "ordinal", flat=True
        )
    )
    return _Work(document, extracted, spans, fingerprint, done)


def _header_budget() -> int:
    return max(
        0,
        min(
            settings.CHUNK_CONTEXT_HEADER_MAX_TOKENS,
            MODEL_MAX_TOKENS - SPECIAL_TOKENS - settings.CHUNK_MAX_TOKENS,
        ),
    )


def _embed_and_stage(works: list[_Work]) -> None:
    model_name = active_model_name()
    header_tokens = _header_budget() if settings.CHUNK_CONTEXT_HEADER else 0
    todo: list[tuple[_Work, int, ChunkSpan, str, str]] = []
    for work in works:
        title = work.document.title or work.document.source_name or None
        for ordinal, span in enumerate(work.spans):
            if ordinal in work.done:
                continue
            text = work.extracted.text[span.start : span.end]
            # The keyword leg indexes the title and headings too, even when the header
            # is not embedded, so a chunk deep in a section still matches its topic.
            context = keyword_context(
                contextual_header(
                    title=title, heading_path=span.heading_path, max_tokens=CONTEXT_MAX_TOKENS
                ),
                text,
            )
            header = (
                contextual_header(
                    title=title, heading_path=span.heading_path, max_tokens=header_tokens
                )
                if header_tokens
                else ""
            )
            todo.append((work, ordinal, span, context, embedding_text(text, header)))
    # Similar lengths in a batch waste less padding (sentence-transformers sorts only
    # within one encode call, and we call it per batch so each batch can be stored).
    todo.sort(key=lambda item: item[2].token_count)
    batch_size = settings.EMBEDDING_BATCH_SIZE
    for offset in range(0, len(todo), batch_size):
        batch = todo[offset : offset + batch_size]
        vectors = embed_texts([item[4] for item in batch], batch_size=batch_size)
        PendingChunk.objects.bulk_create(
            [
                PendingChunk(
                    document=work.document,
                    fingerprint=work.fingerprint,
                    ordinal=ordinal,
                    text=work.extracted.text[span.start : span.end],
                    char_start=span.start,
                    char_end=span.end,
                    first_page=span.first_page,
                    last_page=span.last_page,
                    heading_path=list(span.heading_path),
                    token_count=span.token_count,
                    context=context,
                    embedding=vector,
                    embedding_model=model_name,
                )
                for (work, ordinal, span, context, _), vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,  # a re-delivered task may race a batch already stored
        )


def keyword_context(header: str, text: str) -> str:
    """The header's parts that the chunk text does not already begin with."""
    parts = [part for part in header.strip().split(" > ") if part]
    if parts and text.startswith(parts[-1]):
        parts.pop()
    return " > ".join(parts)


def _finalize(works: list[_Work]) -> list[_Work]:
    """Swap the staged chunks in, for all documents in one transaction: search sees each
    document's old set or its new one, never half."""
    with transaction.atomic():
        current = {
            d.pk: d
            for d in Document.objects.select_for_update()
            .filter(pk__in=[w.document.pk for w in works])
            .only("pk", "status")
        }
        staged = {
            (row["document"], row["fingerprint"]): row["n"]
            for row in PendingChunk.objects.filter(document__in=list(current))
            .values("document", "fingerprint")
            .annotate(n=Count("id"))
        }
        done: list[_Work] = []
        for work in works:
            document = current.get(work.document.pk)
            if document is None or document.status != Status.PROCESSING:
                continue  # deleted, or finished by a duplicate delivery of the same task
            if staged.get((work.document.pk, work.fingerprint), 0) != len(work.spans):
                raise RuntimeError(f"staged chunks of document {work.document.pk} are incomplete")
            done.append(work)
        ids = [work.document.pk for work in done]
        if not ids:
            return []
        keyword_unindex_documents(document_ids=ids)
        Chunk.objects.filter(document_id__in=ids).delete()
        _insert_chunks(ids, [work.fingerprint for work in done])
        keyword_add_documents(document_ids=ids)
        PendingChunk.objects.filter(document_id__in=ids).delete()
        model = active_model_name()
        for work in done:
            document = work.document
            document.status = Status.READY
            document.error = ""
            document.chunk_count = len(work.spans)
            document.embedding_model = model
            document.extracted_text = work.extracted.text
            document.page_count = work.extracted.page_count
            document.processing_started = None
            document.updated = timezone.now()
        Document.objects.bulk_update(
            [work.document for work in done],
            [
                "status",
                "error",
                "chunk_count",
                "embedding_model",
                "extracted_text",
                "page_count",
                "processing_started",
                "title",
                "mime_type",
                "updated",
            ],
        )
    return done


def _insert_chunks(document_ids: list[int], fingerprints: list[str]) -> None:
    """Staged chunks -> chunks, with their keyword representation computed in the same
    statement: each row is written once (an UPDATE would add a second HNSW entry).

    BM25 weights use the collection's indexed average length, or this batch's own for
    a collection's first chunks.
    """
    tsv = tsvector_sql(config="col.search_config", context="p.context", text="p.text")
    bm25 = bm25_sql(
        tsv="m.tsv", length="m.length", avgdl="coalesce(nullif(s.indexed_avgdl, 0), a.avgdl)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH staged AS (
                SELECT p.*, d.collection_id, col.search_config, {tsv} AS tsv
                FROM unnest(%(ids)s::bigint[], %(fingerprints)s::text[])
                     AS w(document_id, fingerprint)
                JOIN documents_pendingchunk p
                  ON p.document_id = w.document_id AND p.fingerprint = w.fingerprint
                JOIN documents_document d ON d.id = p.document_id
                JOIN documents_collection col ON col.id = d.collection_id
            ),
            m AS (SELECT staged.*, {keyword_length_sql("staged.tsv")} AS length FROM staged),
            a AS (SELECT collection_id, avg(length) AS avgdl FROM m GROUP BY collection_id)
            INSERT INTO documents_chunk
                (document_id, collection_id, ordinal, text, char_start, char_end, first_page,
                 last_page, heading_path, token_count, context, embedding, embedding_model,
                 search_config, search_vector, keyword_length, bm25, created)
            SELECT m.document_id, m.collection_id, m.ordinal, m.text, m.char_start,
                   m.char_end, m.first_page, m.last_page, m.heading_path, m.token_count,
                   m.context, m.embedding, m.embedding_model, m.search_config, m.tsv,
                   m.length, {bm25}, now()
            FROM m
            JOIN a ON a.collection_id = m.collection_id
            LEFT JOIN documents_collectiontermstats s ON s.collection_id = m.collection_id
            ORDER BY m.document_id, m.ordinal
            """,
            {"ids": document_ids, "fingerprints": fingerprints, **bm25_params()},
        )


def retry_delay(attempts: int) -> timedelta:
    """30 s, 2 min, 8 min, ... with the default base."""
    return timedelta(seconds=settings.INGEST_RETRY_BASE_SECONDS * 4 ** max(0, attempts - 1))


def _fail(document: Document, reason: str, *, deadline: float) -> None:
    _until_database_returns(
        lambda: _ours(document).update(
            status=Status.FAILED,
            error=reason[:2000],
            processing_started=None,
            updated=timezone.now(),
        ),
        deadline=deadline,
    )
    logger.info("document %s failed: %s", document.pk, reason)


def _retry_or_fail(document: Document, exc: Exception, *, deadline: float) -> None:
    reason = _describe(exc)
    if document.attempts >= settings.INGEST_MAX_ATTEMPTS:
        _fail(document, f"{reason} (gave up after {document.attempts} attempts)", deadline=deadline)
        return
    logger.warning("document %s attempt %s failed: %s", document.pk, document.attempts, reason)
    # The database went away (a restart, a failover), not the document: once it answers
    # again the cause is gone, so queue the document again at once, without back-off.
    delay = timedelta(0) if _database_lost(exc) else retry_delay(document.attempts)
    _until_database_returns(
        lambda: _requeue(document, reason=reason, delay=delay), deadline=deadline
    )


def _ours(document: Document) -> QuerySet[Document]:
    """The document while our claim on it stands. After a lost connection we cannot know
    whether the last commit (the one publishing the chunks) went through, and a worker
    that took over a stale claim must not be overruled."""
    return Document.objects.filter(
        pk=document.pk, status=Status.PROCESSING, processing_started=document.processing_started
    )


@transaction.atomic
def _requeue(document: Document, *, reason: str, delay: timedelta) -> None:
    from documents.tasks import enqueue_documents, schedule_retry  # tasks import this module

    requeued = _ours(document).update(
        status=Status.PENDING,
        error=reason[:2000],
        processing_started=None,
        retry_at=timezone.now() + delay if delay else None,
        updated=timezone.now(),
    )
    if not requeued:
        return
    if delay:
        schedule_retry(document_id=document.pk, delay=delay)
    else:
        enqueue_documents([(document.pk, document.size)])


def _database_lost(exc: BaseException) -> bool:
    """True when `exc` means the connection to the database is gone, rather than that one
    statement failed (a deadlock, a timeout)."""
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    # The driver marks its connection closed when the server went away (or a reconnect
    # failed and left none); a statement that merely failed leaves it open.
    raw = connection.connection
    return raw is None or bool(raw.closed)


def _until_database_returns(action: Callable[[], T], *, deadline: float) -> T:
    """Run `action`, again while the database is unreachable, until `deadline`
    (`time.monotonic()`). Only for actions that are safe to repeat."""
    pause = 0.5
    while True:
        try:
            return action()
        except (OperationalError, InterfaceError) as exc:
            if (
                connection.in_atomic_block  # the caller's transaction is lost: its call
                or not _database_lost(exc)
                or time.monotonic() + pause > deadline
            ):
                raise
            logger.warning("database unavailable, trying again in %.1f s: %s", pause, exc)
            connection.close()  # a broken connection stays broken; the next query reconnects
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def _describe(exc: Exception) -> str:
    if isinstance(exc, EmbeddingError):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"database error: {exc}".strip()
    return f"{type(exc).__name__}: {exc}"

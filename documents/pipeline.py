"""extract -> chunk -> embed -> store, for a batch of documents. Called by the worker.

Read top to bottom: `documents_process` claims each document, extracts and chunks it,
embeds the chunks in batches (several documents share batches, so small documents do
not waste the model's time), stores each batch as soon as it is embedded (so a killed
worker resumes where it stopped), and finally swaps the new chunks in atomically.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from documents.chunking import ChunkSpan, chunk_document, contextual_header, embedding_text
from documents.embedding import EmbeddingError, active_model_name, embed_texts
from documents.extraction import ExtractedText, ExtractionError, extract
from documents.keyword_index import (
    keyword_index_document,
    keyword_index_needs_rebuild,
    keyword_index_rebuild_collection,
    keyword_unindex_document,
)
from documents.models import Chunk, Document, PendingChunk
from documents.tokenizer import MODEL_MAX_TOKENS, SPECIAL_TOKENS

logger = logging.getLogger(__name__)
Status = Document.Status


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
    works: list[_Work] = []
    for document_id in document_ids:
        document = _claim(document_id)
        if document is None:
            continue
        try:
            works.append(_prepare(document))
        except ExtractionError as exc:
            # Deterministic: the same bytes fail the same way, so no automatic retry.
            _fail(document, str(exc))
        except Exception as exc:
            _retry_or_fail(document, exc)
    if not works:
        return
    try:
        _embed_and_stage(works)
    except Exception as exc:  # the model or the database failed: retry them all later
        for work in works:
            _retry_or_fail(work.document, exc)
        return
    for work in works:
        try:
            _finalize(work)
        except Exception as exc:
            _retry_or_fail(work.document, exc)


def claimable() -> Q:
    """Pending documents, and those whose worker vanished mid-way (the broker re-delivers
    a task after `retry` seconds; the stuck-document sweep does the same)."""
    stale = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["retry"])
    return Q(status=Status.PENDING) | Q(status=Status.PROCESSING, processing_started__lt=stale)


def documents_process_pending(
    *, collection_id: int | None = None, group_size: int = 32, progress: Any = None
) -> None:
    """Process every claimable document in this process (no worker needed)."""
    while True:
        queryset = Document.objects.filter(claimable())
        if collection_id is not None:
            queryset = queryset.filter(collection_id=collection_id)
        ids = list(queryset.order_by("id").values_list("id", flat=True)[:group_size])
        if not ids:
            return
        documents_process(document_ids=ids)
        if progress is not None:
            progress(len(ids))


def _claim(document_id: int) -> Document | None:
    """Mark a pending (or crashed mid-way) document as ours; None if there is nothing to do."""
    with transaction.atomic():
        document = (
            Document.objects.select_for_update(skip_locked=True)
            .select_related("collection")
            .filter(claimable(), pk=document_id)
            .first()
        )
        if document is None:
            return None  # deleted, already done, or another worker holds it right now
        document.status = Status.PROCESSING
        document.attempts += 1
        document.processing_started = timezone.now()
        document.save(update_fields=["status", "attempts", "processing_started", "updated"])
        return document


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
    todo: list[tuple[_Work, int, ChunkSpan, str]] = []
    for work in works:
        title = work.document.title or work.document.source_name or None
        for ordinal, span in enumerate(work.spans):
            if ordinal in work.done:
                continue
            text = work.extracted.text[span.start : span.end]
            header = (
                contextual_header(
                    title=title, heading_path=span.heading_path, max_tokens=header_tokens
                )
                if header_tokens
                else ""
            )
            todo.append((work, ordinal, span, embedding_text(text, header)))
    batch_size = settings.EMBEDDING_BATCH_SIZE
    for offset in range(0, len(todo), batch_size):
        batch = todo[offset : offset + batch_size]
        vectors = embed_texts([item[3] for item in batch], batch_size=batch_size)
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
                    embedding=vector,
                    embedding_model=model_name,
                )
                for (work, ordinal, span, _), vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,  # a re-delivered task may race a batch already stored
        )


def _finalize(work: _Work) -> None:
    """Swap the staged chunks in: search sees the old set or the new one, never half."""
    document = work.document
    with transaction.atomic():
        locked = Document.objects.select_for_update().filter(pk=document.pk).first()
        if locked is None or locked.status != Status.PROCESSING:
            return  # deleted, or finished by a duplicate delivery of the same task
        staged = PendingChunk.objects.filter(document=document, fingerprint=work.fingerprint)
        if staged.count() != len(work.spans):
            raise RuntimeError("staged chunks are incomplete")  # retried, resumes
        keyword_unindex_document(document_id=document.pk)
        Chunk.objects.filter(document=document).delete()
        collection = document.collection
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document=document,
                    collection=collection,
                    ordinal=row.ordinal,
                    text=row.text,
                    char_start=row.char_start,
                    char_end=row.char_end,
                    first_page=row.first_page,
                    last_page=row.last_page,
                    heading_path=row.heading_path,
                    token_count=row.token_count,
                    embedding=row.embedding,
                    embedding_model=row.embedding_model,
                    search_config=collection.search_config,
                )
                for row in staged.order_by("ordinal")
            ]
        )
        keyword_index_document(document_id=document.pk)
        PendingChunk.objects.filter(document=document).delete()
        document.status = Status.READY
        document.error = ""
        document.chunk_count = len(work.spans)
        document.embedding_model = active_model_name()
        document.extracted_text = work.extracted.text
        document.page_count = work.extracted.page_count
        document.processing_started = None
        document.save()
    if keyword_index_needs_rebuild(collection_id=document.collection_id):
        with transaction.atomic():
            keyword_index_rebuild_collection(collection_id=document.collection_id)


def retry_delay(attempts: int) -> timedelta:
    """30 s, 2 min, 8 min, ... with the default base."""
    return timedelta(seconds=settings.INGEST_RETRY_BASE_SECONDS * 4 ** max(0, attempts - 1))


def _fail(document: Document, reason: str) -> None:
    Document.objects.filter(pk=document.pk).update(
        status=Status.FAILED, error=reason[:2000], processing_started=None, updated=timezone.now()
    )
    logger.info("document %s failed: %s", document.pk, reason)


def _retry_or_fail(document: Document, exc: Exception) -> None:
    reason = _describe(exc)
    if document.attempts >= settings.INGEST_MAX_ATTEMPTS:
        _fail(document, f"{reason} (gave up after {document.attempts} attempts)")
        return
    logger.warning("document %s attempt %s failed: %s", document.pk, document.attempts, reason)
    Document.objects.filter(pk=document.pk).update(
        status=Status.PENDING, error=reason[:2000], processing_started=None, updated=timezone.now()
    )
    from documents.tasks import schedule_retry  # tasks import this module

    schedule_retry(document_id=document.pk, delay=retry_delay(document.attempts))


def _describe(exc: Exception) -> str:
    if isinstance(exc, EmbeddingError):
        return str(exc)
    if isinstance(exc, DatabaseError):
        return f"database error: {exc}".strip()
    return f"{type(exc).__name__}: {exc}"

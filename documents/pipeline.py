"""extract -> chunk -> embed -> stage -> finalize, for a batch of documents. Called by
the worker (documents/tasks.py) and by `documents_process_pending`.

Read top to bottom: `documents_process` claims the documents (documents/lifecycle.py
owns every status change), extracts and chunks each, embeds the chunks in batches
(several documents share batches, so small documents do not waste the model's time),
stages each batch as soon as it is embedded (so a killed worker's successor resumes
where it stopped), and finally swaps the new chunks in atomically. A database restart in
the middle is waited out (documents/outage.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count

from documents.attachments import document_attachments_ingest
from documents.chunk_text import (
    ChunkingConfig,
    ChunkText,
    chunk_text,
    content_fingerprint,
    for_model,
    model_context,
)
from documents.chunking import ChunkSpan, chunk_document
from documents.citations import display_title
from documents.embedding import ModelSpec, embed_texts
from documents.extraction import ExtractedText, ExtractionError, extract
from documents.extraction.ocr import OcrOptions, ocr_options
from documents.keyword_index import (
    chunks_insert_from_staging,
    collections_needing_rebuild,
    keyword_add_documents,
    keyword_index_rebuild_collection,
    keyword_unindex_documents,
)
from documents.lifecycle import (
    claimable,
    document_fail,
    document_fail_unreadable,
    document_retry_later,
    documents_claim,
    documents_mark_ready,
    heartbeat,
)
from documents.models import Chunk, Document, PendingChunk
from documents.outage import until_database_returns
from documents.progress import EMBEDDING, OCR, progress_report, progress_report_many

# A task waits for a restarted database until this long before django-q2's time limit,
# then gives up and leaves its documents to the broker's re-delivery.
_OUTAGE_MARGIN_SECONDS = 5


@dataclass
class _Work:
    document: Document
    extracted: ExtractedText
    spans: list[ChunkSpan]
    fingerprint: str
    config: ChunkingConfig  # fitted to the model's window
    spec: ModelSpec  # the collection's model (or the one `reembed` moves it to)
    done: set[int] = field(default_factory=set)  # ordinals already in PendingChunk


@dataclass
class _Todo:
    work: _Work
    ordinal: int
    span: ChunkSpan
    texts: ChunkText


def documents_process(*, document_ids: list[int], chunking: ChunkingConfig | None = None) -> None:
    """Process the given documents; ``chunking`` defaults to the settings (the evaluation
    passes its own variants)."""
    config = chunking or ChunkingConfig.from_settings()
    # Every database write below survives a database restart by waiting for the server
    # (until shortly before the task's time limit), so a restart costs a retry, not the
    # stuck-document sweep's wait.
    deadline = time.monotonic() + max(0, settings.Q_CLUSTER["timeout"] - _OUTAGE_MARGIN_SECONDS)
    claimed = until_database_returns(lambda: documents_claim(document_ids), deadline=deadline)
    with heartbeat(claimed):
        works = _prepare_all(claimed, config, deadline=deadline)
        done = _embed_and_finalize(works, deadline=deadline)
    if done:
        until_database_returns(
            lambda: _rebuild_drifted(sorted({work.document.collection_id for work in done})),
            deadline=deadline,
        )


def documents_process_pending(
    *,
    collection_id: int | None = None,
    group_size: int = 128,
    progress: Callable[[int], object] | None = None,
    chunking: ChunkingConfig | None = None,
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
        documents_process(document_ids=ids, chunking=chunking)
        taken += len(ids)
        if progress is not None:
            progress(len(ids))


def documents_stage(*, documents: list[Document], spec: ModelSpec) -> dict[int, str]:
    """Chunk and embed ``documents`` for ``spec`` into the staging table only: their
    chunks stay as they are and search keeps serving them (a model change,
    documents/reembed.py, swaps them all at once). Resumes what a killed run staged.
    Returns the documents fully staged, with the fingerprint of their staged set; a
    document that cannot be read again fails with the reason (the switch then drops its
    old chunks instead of waiting for it)."""
    config = ChunkingConfig.from_settings()
    works: list[_Work] = []
    for document in documents:
        try:
            works.append(_prepare(document, config, spec=spec, staging_only=True))
        except (ExtractionError, OSError) as exc:  # the same next time: no endless retry
            document_fail_unreadable(
                document, f"could not be read again for the model change to {spec.name}: {exc}"
            )
    _embed_and_stage(works)
    staged: dict[int, str] = {}
    with transaction.atomic():
        for work in works:
            done = PendingChunk.objects.filter(
                document=work.document, fingerprint=work.fingerprint
            ).count()
            if done == len(work.spans):
                Document.objects.filter(pk=work.document.pk).update(
                    staged_fingerprint=work.fingerprint, staged_chunk_count=done
                )
                staged[work.document.pk] = work.fingerprint
    return staged


def staged_fingerprint(document: Document, spec: ModelSpec) -> str:
    """The fingerprint ``document``'s chunks for ``spec`` are staged under."""
    return content_fingerprint(
        document.sha256, for_model(ChunkingConfig.from_settings(), spec), spec
    )


def _prepare_all(
    documents: list[Document], config: ChunkingConfig, *, deadline: float
) -> list[_Work]:
    works: list[_Work] = []
    for document in documents:
        try:
            works.append(_prepare(document, config, deadline))
        except ExtractionError as exc:
            # Deterministic: the same bytes fail the same way, so no automatic retry.
            document_fail(document, str(exc), deadline=deadline)
        except Exception as exc:
            document_retry_later(document, exc, deadline=deadline)
    return works


def _embed_and_finalize(works: list[_Work], *, deadline: float) -> list[_Work]:
    if not works:
        return []
    try:
        _embed_and_stage(works)
        return _finalize(works)
    except Exception as exc:  # the model or the database failed: retry them all later
        for work in works:
            document_retry_later(work.document, exc, deadline=deadline)
        return []


def _rebuild_drifted(collection_ids: list[int]) -> None:
    for collection_id in collections_needing_rebuild(collection_ids=collection_ids):
        with transaction.atomic():
            keyword_index_rebuild_collection(collection_id=collection_id, reanalyse=False)


def _prepare(
    document: Document,
    config: ChunkingConfig,
    deadline: float | None = None,
    spec: ModelSpec | None = None,
    *,
    staging_only: bool = False,
) -> _Work:
    """Extract and chunk ``document`` for ``spec`` (default: its collection's model), in
    that model's tokens; the staged chunks already made under the same fingerprint are
    kept (a killed worker's successor resumes)."""
    spec = spec or document.collection.model_spec
    config = for_model(config, spec)
    with document.original.open("rb") as handle:
        data = handle.read()
    extracted = extract(
        data, filename=document.source_name or document.original.name, ocr=_ocr(document, deadline)
    )
    with model_context(spec):
        spans = chunk_document(
            extracted,
            max_tokens=config.max_tokens,
            overlap_tokens=config.overlap_tokens,
            min_tokens=config.min_tokens,
        )
    if not spans:
        raise ExtractionError("no extractable text")
    if not document.title and extracted.title:
        document.title = extracted.title[:500]
    document.mime_type = extracted.mime_type
    # What the file says of itself (author, date, sender); what the uploader set wins.
    document.metadata = {**extracted.metadata, **document.metadata}
    if extracted.attachments and not staging_only:  # a model change keeps the attachments
        document_attachments_ingest(parent=document, attachments=extracted.attachments)
    fingerprint = content_fingerprint(document.sha256, config, spec)
    # Rows of an earlier, different run (content or settings changed) are stale.
    PendingChunk.objects.filter(document=document).exclude(fingerprint=fingerprint).delete()
    done = set(
        PendingChunk.objects.filter(document=document, fingerprint=fingerprint).values_list(
            "ordinal", flat=True
        )
    )
    return _Work(document, extracted, spans, fingerprint, config, spec, done)


def _ocr(document: Document, deadline: float | None) -> OcrOptions | None:
    """OCR (scanned PDF pages, images) in the collection's language, reporting pages read
    as the document's progress, ending in time for the task's limit; None when OCR=off."""

    def progress(done: int, total: int) -> None:
        progress_report(document_id=document.pk, phase=OCR, done=done, total=total)

    return ocr_options(document.collection.search_config, progress=progress, task_deadline=deadline)


def _todo(works: list[_Work]) -> list[_Todo]:
    todo: list[_Todo] = []
    for work in works:
        title = display_title(work.document.title, work.document.source_name) or None
        with model_context(work.spec):
            for ordinal, span in enumerate(work.spans):
                if ordinal in work.done:
                    continue
                text = work.extracted.text[span.start : span.end]
                texts = chunk_text(
                    text=text, title=title, heading_path=span.heading_path, config=work.config
                )
                todo.append(_Todo(work, ordinal, span, texts))
    # Similar lengths in a batch waste less padding (sentence-transformers sorts only
    # within one encode call, and we call it per batch so each batch can be stored).
    todo.sort(key=lambda item: item.span.token_count)
    return todo


def _embed_and_stage(works: list[_Work]) -> None:
    todo = _todo(works)
    # Chunks embedded of each document's total, reported after every batch (it commits
    # on its own, so the admin list and the API show it move).
    embedded = {work.document.pk: len(work.done) for work in works}
    totals = {work.document.pk: len(work.spans) for work in works}
    progress_report_many(phase=EMBEDDING, counts={pk: (embedded[pk], totals[pk]) for pk in totals})
    batch_size = settings.EMBEDDING_BATCH_SIZE
    # One model per batch: documents of collections with different models share a task.
    by_model: dict[str, list[_Todo]] = {}
    for item in todo:
        by_model.setdefault(item.work.spec.cache_key(), []).append(item)
    batches = [
        items[offset : offset + batch_size]
        for items in by_model.values()
        for offset in range(0, len(items), batch_size)
    ]
    for batch in batches:
        spec = batch[0].work.spec
        started = time.perf_counter()
        vectors = embed_texts(
            [item.texts.embedded for item in batch], spec=spec, batch_size=batch_size
        )
        # Imported here: prometheus-client must not load before a qcluster has chosen
        # its PROMETHEUS_MULTIPROC_DIR (insights/apps.py).
        from insights.metrics import embedding_batch_observe

        embedding_batch_observe(seconds=time.perf_counter() - started, chunks=len(batch))
        PendingChunk.objects.bulk_create(
            [
                PendingChunk(
                    document=item.work.document,
                    fingerprint=item.work.fingerprint,
                    ordinal=item.ordinal,
                    text=item.work.extracted.text[item.span.start : item.span.end],
                    char_start=item.span.start,
                    char_end=item.span.end,
                    first_page=item.span.first_page,
                    last_page=item.span.last_page,
                    heading_path=list(item.span.heading_path),
                    token_count=item.span.token_count,
                    context=item.texts.context,
                    embedding=vector,
                    embedding_model=spec.name,
                )
                for item, vector in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,  # a re-delivered task may race a batch already stored
        )
        for item in batch:
            embedded[item.work.document.pk] += 1
        touched = {item.work.document.pk for item in batch}
        progress_report_many(
            phase=EMBEDDING, counts={pk: (embedded[pk], totals[pk]) for pk in touched}
        )


def _finalize(works: list[_Work]) -> list[_Work]:
    """Swap the staged chunks in, for all documents in one transaction: search sees each
    document's old set or its new one, never half."""
    with transaction.atomic():
        # Documents first, in id order, then keyword statistics (keyword_index.py): every
        # writer takes these locks in this order, so none waits for another in a circle.
        current = {
            d.pk: d
            for d in Document.objects.select_for_update()
            .filter(pk__in=[w.document.pk for w in works])
            .order_by("pk")
            .only("pk", "status")
        }
        done = _complete(works, current)
        ids = [work.document.pk for work in done]
        if not ids:
            return []
        keyword_unindex_documents(document_ids=ids)
        Chunk.objects.filter(document_id__in=ids).delete()
        chunks_insert_from_staging(
            document_ids=ids, fingerprints=[work.fingerprint for work in done]
        )
        keyword_add_documents(document_ids=ids)
        PendingChunk.objects.filter(document_id__in=ids).delete()
        for work in done:
            work.document.chunk_count = len(work.spans)
            work.document.embedding_model = work.spec.name
            work.document.extracted_text = work.extracted.text
            work.document.page_count = work.extracted.page_count
        documents_mark_ready(
            [work.document for work in done],
            fields=[
                "chunk_count",
                "embedding_model",
                "extracted_text",
                "page_count",
                "title",
                "mime_type",
                "metadata",
            ],
        )
    return done


def _complete(works: list[_Work], current: dict[int, Document]) -> list[_Work]:
    """The works still ours whose every chunk is staged."""
    staged = {
        (row["document"], row["fingerprint"]): row["n"]
        for row in PendingChunk.objects.filter(document__in=list(current))
        .values("document", "fingerprint")
        .annotate(n=Count("id"))
    }
    done: list[_Work] = []
    for work in works:
        document = current.get(work.document.pk)
        if document is None or document.status != Document.Status.PROCESSING:
            continue  # deleted, or finished by a duplicate delivery of the same task
        if staged.get((work.document.pk, work.fingerprint), 0) != len(work.spans):
            raise RuntimeError(f"staged chunks of document {work.document.pk} are incomplete")
        done.append(work)
    return done

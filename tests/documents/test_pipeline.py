"""Ingestion end to end: upload -> extract -> chunk -> embed -> store, on the real
database and model, processed in the test's own process (tests/documents/test_worker.py
runs a real worker)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from django.utils import timezone
from django_q.models import Schedule

from documents.lifecycle import document_reembed, document_retry, documents_sweep_stuck
from documents.models import Chunk, CollectionTermStats, Document, PendingChunk
from documents.pipeline import documents_process
from documents.tokenizer import count_tokens
from tests.factories import CollectionFactory

LONG_TEXT = "\n\n".join(
    f"Paragraph {i}. "
    + " ".join(f"Sentence {i}-{j} talks about topic{i} and more words." for j in range(8))
    for i in range(30)
)


def test_text_document_becomes_ready_with_exact_citations(collection: Any, ingest: Any) -> None:
    (document,) = ingest(collection, {"notes.md": "# Title\n\n## Part\n\n" + LONG_TEXT})
    assert document.status == "ready", document.error
    assert document.title == "Title"
    assert document.mime_type == "text/markdown"
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert len(chunks) == document.chunk_count > 3
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert document.extracted_text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.embedding is not None and chunk.embedding_model == "all-MiniLM-L6-v2"
        assert abs(np.linalg.norm(chunk.embedding) - 1) < 1e-3
        assert count_tokens(chunk.text) <= 200
        assert chunk.search_config == "english" and chunk.bm25 is not None
    assert chunks[1].heading_path == ["Title", "Part"]
    assert not PendingChunk.objects.exists()


def test_pdf_pages_are_kept(collection: Any, ingest: Any, tmp_path: Any) -> None:
    from reportlab.pdfgen import canvas

    path = tmp_path / "paper.pdf"
    pdf = canvas.Canvas(str(path))
    for page in range(1, 4):
        pdf.drawString(
            72, 720, f"Page {page} discusses photosynthesis in chloroplast number {page}."
        )
        pdf.showPage()
    pdf.save()
    (document,) = ingest(collection, {"paper.pdf": path.read_bytes()})
    assert document.status == "ready", document.error
    assert document.page_count == 3
    pages = {(c.first_page, c.last_page) for c in Chunk.objects.filter(document=document)}
    assert min(p[0] or 0 for p in pages) == 1 and max(p[1] or 0 for p in pages) == 3


def test_processing_twice_gives_the_same_result(collection: Any, ingest: Any) -> None:
    (document,) = ingest(collection, {"a.txt": LONG_TEXT})
    before = list(
        Chunk.objects.filter(document=document).values_list("ordinal", "text", "char_start")
    )
    stats = CollectionTermStats.objects.get(collection=collection)
    document_reembed(document=document)
    documents_process(document_ids=[document.pk])
    documents_process(document_ids=[document.pk])  # a duplicate delivery: nothing to do
    after = list(
        Chunk.objects.filter(document=document).values_list("ordinal", "text", "char_start")
    )
    assert before == after
    again = CollectionTermStats.objects.get(collection=collection)
    assert (again.chunk_count, again.total_length) == (stats.chunk_count, stats.total_length)


def test_several_documents_share_a_task(collection: Any, ingest: Any) -> None:
    documents = ingest(
        collection, {f"d{i}.txt": f"Document {i} is about subject {i}." for i in range(5)}
    )
    assert [d.status for d in documents] == ["ready"] * 5
    assert Chunk.objects.filter(collection=collection).count() == 5


def test_model_failure_retries_with_backoff_then_fails_and_can_be_retried(
    collection: Any, ingest: Any, settings: Any
) -> None:
    from documents import embedding

    # The collection's model lives in a folder that is gone.
    collection.embedding_location = "/nonexistent/model"
    collection.save()
    embedding._models.clear()
    settings.INGEST_MAX_ATTEMPTS = 2
    (document,) = ingest(collection, {"a.txt": "Some text about enzymes."})
    assert document.status == "pending" and document.attempts == 1
    assert "cannot load embedding model" in document.error
    retry = Schedule.objects.get(name__startswith=f"retry document {document.pk}")
    delay = retry.next_run - timezone.now()
    assert timedelta(seconds=20) < delay <= timedelta(seconds=30)
    documents_process(document_ids=[document.pk])  # not due yet: nothing happens
    document.refresh_from_db()
    assert document.status == "pending" and document.attempts == 1
    Document.objects.filter(pk=document.pk).update(retry_at=timezone.now())  # time passes
    documents_process(document_ids=[document.pk])
    document.refresh_from_db()
    assert document.status == "failed" and "gave up after 2 attempts" in document.error
    collection.embedding_location = ""  # the folder is back (the packaged weights)
    collection.save()
    document_retry(document=document)
    documents_process(document_ids=[document.pk])
    document.refresh_from_db()
    assert document.status == "ready" and document.error == ""


def test_sweep_requeues_stuck_documents_and_fails_exhausted_ones(
    collection: Any, ingest: Any, settings: Any
) -> None:
    one, two = ingest(collection, {"a.txt": "alpha text", "b.txt": "beta text"})
    long_ago = timezone.now() - timedelta(hours=1)
    Document.objects.filter(pk=one.pk).update(
        status="processing", processing_started=long_ago, attempts=1
    )
    Document.objects.filter(pk=two.pk).update(
        status="processing", processing_started=long_ago, attempts=settings.INGEST_MAX_ATTEMPTS
    )
    assert documents_sweep_stuck() == 2
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.status == "pending"
    assert two.status == "failed" and "worker stopped" in two.error


def test_sweep_requeues_pending_documents_that_have_no_task(
    collection: Any, ingest: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django_q.models import OrmQ

    orphan, waiting, fresh = ingest(
        collection, {"a.txt": "alpha text", "b.txt": "beta text", "c.txt": "gamma text"}
    )
    long_ago = timezone.now() - timedelta(hours=1)
    Document.objects.filter(pk=orphan.pk).update(status="pending", updated=long_ago)
    Document.objects.filter(pk=waiting.pk).update(
        status="pending", updated=long_ago, retry_at=timezone.now() + timedelta(minutes=5)
    )
    Document.objects.filter(pk=fresh.pk).update(status="pending")
    OrmQ.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert documents_sweep_stuck() == 1
    assert OrmQ.objects.count() == 1  # one task, for the orphan only
    # While the queue holds work, pending documents are presumed to be in it.
    Document.objects.filter(pk=orphan.pk).update(updated=long_ago)
    assert documents_sweep_stuck() == 0


def test_chunks_swap_atomically_while_reprocessing(collection: Any, ingest: Any) -> None:
    (document,) = ingest(collection, {"a.txt": LONG_TEXT})
    old_ids = set(Chunk.objects.filter(document=document).values_list("id", flat=True))
    # A half-finished run: one batch staged, the document still serving its old chunks.
    from documents.chunk_text import ChunkingConfig
    from documents.lifecycle import documents_claim
    from documents.pipeline import _prepare

    Document.objects.filter(pk=document.pk).update(status="pending")
    (claimed,) = documents_claim([document.pk])
    work = _prepare(claimed, ChunkingConfig.from_settings())
    PendingChunk.objects.create(
        document=document,
        fingerprint=work.fingerprint,
        ordinal=0,
        text="x",
        char_start=0,
        char_end=1,
        embedding=np.ones(384, dtype=np.float32),
        embedding_model="m",
    )
    assert set(Chunk.objects.filter(document=document).values_list("id", flat=True)) == old_ids
    Document.objects.filter(pk=document.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    documents_process(document_ids=[document.pk])
    document.refresh_from_db()
    assert document.status == "ready"
    assert not set(Chunk.objects.filter(document=document).values_list("id", flat=True)) & old_ids
    assert Chunk.objects.filter(document=document).count() == document.chunk_count


def test_a_settings_model_change_applies_to_new_collections_only(
    collection: Any, ingest: Any, settings: Any
) -> None:
    from search.retrieval import SearchParams, search

    collection.is_public = True
    collection.save()
    (document,) = ingest(collection, {"a.txt": "Mitochondria are the powerhouse of the cell."})
    query = SearchParams(query="powerhouse of the cell", mode="semantic")
    assert search(query, user=None).total == 1
    # Same weights under another name, as a model change looks to the database.
    settings.EMBEDDING_MODEL_NAME = "minilm-v2-renamed"
    assert search(query, user=None).total == 1  # the collection keeps the model it recorded
    newer = CollectionFactory.create(is_public=True)
    assert newer.embedding_model == "minilm-v2-renamed"
    ingest(newer, {"b.txt": "The powerhouse of the cell makes ATP."})
    names = Chunk.objects.filter(collection=newer).values_list("embedding_model", flat=True)
    assert set(names) == {"minilm-v2-renamed"}
    both = search(query, user=None)
    assert both.total == 2 and both.models == ["all-MiniLM-L6-v2", "minilm-v2-renamed"]
    # Chunks under a name other than their collection's are not searched semantically
    # (their vectors may not be comparable); the keyword leg never depends on the model.
    Chunk.objects.filter(document=document).update(embedding_model="another-model")
    assert search(query, user=None).total == 1
    assert search(SearchParams(query="powerhouse", mode="keyword"), user=None).total == 2


def test_migrate_installs_the_periodic_stuck_document_sweep(db: None) -> None:
    from django.core.management import call_command

    Schedule.objects.filter(name="sweep stuck documents").delete()
    call_command("migrate", verbosity=0)
    schedule = Schedule.objects.get(name="sweep stuck documents")
    assert schedule.func == "documents.tasks.sweep_stuck_documents"
    assert schedule.schedule_type == Schedule.MINUTES and schedule.repeats == -1

"""Changing a collection's embedding model without downtime.

    start --> stage every document for the target model (beside its chunks) --> switch

- start (`collection_reembed_start`): the collection records the target spec
  (``reembed_target``); the worker builds the target model's vector index and stages
  the documents. Asking again with the same target resumes; another target replaces it.
- stage (`reembed_stage`): each READY document is extracted, chunked with the target
  model's tokenizer and window, and embedded into the staging table
  (``PendingChunk``, under the target's fingerprint). Its chunks are untouched: search
  keeps serving the old model's chunks with full results. A killed run resumes from the
  staged rows (pipeline.documents_stage).
- switch (`reembed_finish`): once every document is staged (documents added meanwhile
  are staged too; documents being processed are waited for), one transaction swaps every
  document's chunks for its staged ones and records the target as the collection's
  model. A search reads the collection's model in its own transaction, so it sees the
  old model with the old chunks or the new model with the new ones, never a mix.
  The old model's index goes with the next index sync if nothing else uses it.

Interfaces: `manage.py reembed --collection SLUG --model NAME`, the admin action and
`POST /api/v1/collections/{slug}/reembed/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from documents.embedding import EmbeddingError, ModelSpec, probe_dimensions
from documents.embedding.spec import settings_spec
from documents.keyword_index import (
    chunks_insert_from_staging,
    keyword_add_documents,
    keyword_unindex_documents,
)
from documents.models import Chunk, Collection, Document, PendingChunk
from documents.pipeline import documents_stage, staged_fingerprint
from documents.queue import enqueue_reembed_stage, enqueue_vector_index_sync
from documents.selectors import model_name_conflict
from documents.vector_index import vector_indexes_sync

Status = Document.Status


class ReembedError(ValueError):
    """A model change that cannot start (bad spec, nothing to change)."""


@dataclass(frozen=True)
class ReembedProgress:
    staged: int
    total: int
    target: str | None
    error: str

    @property
    def done(self) -> bool:
        return self.target is None


def target_spec(
    *,
    model: str,
    backend: str | None = None,
    location: str | None = None,
    dimensions: int | None = None,
    query_prefix: str | None = None,
    passage_prefix: str | None = None,
    max_tokens: int | None = None,
) -> ModelSpec:
    """The spec to move to: what is given, the rest from settings; the dimensions are
    asked of the model itself when not given (which also proves it loads or answers)."""
    try:
        base = settings_spec(name=model, dimensions=dimensions or 1)
        spec = ModelSpec(
            name=model,
            backend=backend or base.backend,
            location=base.location if location is None else location,
            dimensions=dimensions or 1,
            query_prefix=base.query_prefix if query_prefix is None else query_prefix,
            passage_prefix=base.passage_prefix if passage_prefix is None else passage_prefix,
            max_tokens=max_tokens or base.max_tokens,
        )
        if backend and backend != base.backend and location is None:
            spec = ModelSpec(**{**spec.as_dict(), "location": ""})
        if not dimensions:
            spec = ModelSpec(**{**spec.as_dict(), "dimensions": probe_dimensions(spec)})
    except EmbeddingError as exc:
        raise ReembedError(str(exc)) from exc
    return spec


def check_name_free(collection: Collection | None, spec: ModelSpec) -> None:
    """A model name names one kind of vector across the installation (one index per
    name): it cannot mean two different specs (``collection``: the one moving to it)."""
    conflict = model_name_conflict(spec=spec, exclude_pk=collection.pk if collection else None)
    if conflict:
        raise ReembedError(conflict)


def collection_reembed_start(
    *, collection: Collection, spec: ModelSpec, enqueue: bool = True
) -> ReembedProgress:
    """Start (or resume) moving ``collection`` to ``spec``; the staging is queued
    (``enqueue`` False: the caller runs it, `reembed_run_inline`)."""
    check_name_free(collection, spec)
    with transaction.atomic():
        locked = Collection.objects.select_for_update().get(pk=collection.pk)
        if locked.model_spec == spec and not locked.reembed_target:
            raise ReembedError(f"collection {locked.slug!r} already uses model {spec.name!r}")
        if locked.reembed_target != spec.as_dict():
            locked.reembed_target = spec.as_dict()
            locked.reembed_requested = timezone.now()
        locked.reembed_error = ""
        locked.save(update_fields=["reembed_target", "reembed_requested", "reembed_error"])
        if enqueue:
            enqueue_vector_index_sync()
            enqueue_reembed_stage(locked.pk, reembed_missing(locked))
    collection.refresh_from_db()
    return reembed_progress(collection)


def collection_reembed_cancel(*, collection: Collection) -> None:
    """Forget the target; staged rows are dropped with the next processing of each
    document (their fingerprint is stale)."""
    Collection.objects.filter(pk=collection.pk).update(reembed_target=None, reembed_error="")
    enqueue_vector_index_sync()


def _target(collection: Collection) -> ModelSpec | None:
    return ModelSpec.from_dict(collection.reembed_target) if collection.reembed_target else None


def reembed_missing(collection: Collection) -> list[int]:
    """READY documents whose chunks for the target are not all staged yet."""
    spec = _target(collection)
    if spec is None:
        return []
    missing = []
    for document in Document.objects.filter(collection=collection, status=Status.READY).only(
        "pk", "sha256", "staged_fingerprint"
    ):
        if document.staged_fingerprint != staged_fingerprint(document, spec):
            missing.append(document.pk)
    return missing


def reembed_progress(collection: Collection) -> ReembedProgress:
    collection.refresh_from_db()
    total = Document.objects.filter(collection=collection, status=Status.READY).count()
    target = collection.reembed_target["name"] if collection.reembed_target else None
    staged = total - len(reembed_missing(collection)) if target else total
    return ReembedProgress(
        staged=staged, total=total, target=target, error=collection.reembed_error
    )


def reembed_stage(*, collection_id: int, document_ids: list[int]) -> int:
    """Stage the given documents for the collection's target; returns how many are
    now fully staged. Documents no longer READY are skipped (the switch waits for them)."""
    collection = Collection.objects.get(pk=collection_id)
    spec = _target(collection)
    if spec is None:
        return 0
    documents = list(
        Document.objects.filter(pk__in=document_ids, collection=collection, status=Status.READY)
        .select_related("collection")
        .order_by("pk")
    )
    try:
        return len(documents_stage(documents=documents, spec=spec))
    except EmbeddingError as exc:  # the model or its server failed: shown, retried later
        Collection.objects.filter(pk=collection_id).update(reembed_error=str(exc)[:2000])
        raise


def reembed_finish(*, collection_id: int) -> bool:
    """Switch the collection to its target if every document is staged, in one
    transaction; False (nothing changed) while documents are missing or in processing."""
    with transaction.atomic():
        collection = Collection.objects.select_for_update().get(pk=collection_id)
        spec = _target(collection)
        if spec is None:
            return False
        documents = list(
            Document.objects.select_for_update()
            .filter(collection=collection)
            .order_by("pk")
            .only("pk", "status", "sha256", "staged_fingerprint", "staged_chunk_count")
        )
        if any(d.status in (Status.PENDING, Status.PROCESSING) for d in documents):
            return False
        ready = [d for d in documents if d.status == Status.READY]
        fingerprints = [staged_fingerprint(d, spec) for d in ready]
        if any(d.staged_fingerprint != f for d, f in zip(ready, fingerprints, strict=True)):
            return False
        ids = [d.pk for d in ready]
        # A failed document's chunks (of the old model) go too: one model per collection.
        failed = [d.pk for d in documents if d.status == Status.FAILED]
        keyword_unindex_documents(document_ids=ids + failed)
        Chunk.objects.filter(document_id__in=ids + failed).delete()
        chunks_insert_from_staging(document_ids=ids, fingerprints=fingerprints)
        keyword_add_documents(document_ids=ids)
        PendingChunk.objects.filter(document_id__in=ids).delete()
        Document.objects.filter(pk__in=failed).update(chunk_count=0)
        for document in ready:
            Document.objects.filter(pk=document.pk).update(
                embedding_model=spec.name,
                chunk_count=document.staged_chunk_count,
                staged_fingerprint="",
                staged_chunk_count=0,
            )
        collection.set_model_spec(spec)
        collection.reembed_target = None
        collection.reembed_error = ""
        collection.save()
        enqueue_vector_index_sync()  # the old model's index, if nothing else uses it
    return True


def reembed_run_inline(
    *,
    collection: Collection,
    group_size: int = 32,
    wait_seconds: float = 300,
    progress: Callable[[ReembedProgress], None] | None = None,
) -> ReembedProgress:
    """Run a started model change in this process (`manage.py reembed`): build the
    target's index, stage the missing documents in groups of ``group_size`` (reporting
    progress after each), and switch; documents added meanwhile are staged too. Documents
    in processing are waited for up to ``wait_seconds``. A killed run resumes from what
    was staged. Returns the progress at the end (``done`` once switched)."""
    vector_indexes_sync()  # the switched collection's searches must find its index
    waited_since: float | None = None
    stuck: list[int] = []
    while collection.reembed_target is not None:
        missing = reembed_missing(collection)
        if missing and missing == stuck:
            raise ReembedError(
                f"documents {', '.join(map(str, missing[:10]))} could not be staged (their "
                "original cannot be read); delete or re-upload them, then run again"
            )
        for start in range(0, len(missing), group_size):
            group = missing[start : start + group_size]
            reembed_stage(collection_id=collection.pk, document_ids=group)
            if progress is not None:
                progress(reembed_progress(collection))
        stuck = reembed_missing(collection) if missing else []
        if reembed_finish(collection_id=collection.pk):
            break
        if not stuck:  # documents in processing: their new chunks are staged next round
            waited_since = waited_since or time.monotonic()
            if time.monotonic() - waited_since > wait_seconds:
                break
            time.sleep(1)
        collection.refresh_from_db()
    return reembed_progress(collection)

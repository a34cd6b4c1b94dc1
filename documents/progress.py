"""Progress of ingestion, for people watching it: per document (the step it is in and how
far it got) and per upload batch (n of N settled, failed, time left).

The one owner of progress reporting. The pipeline reports each embedding batch, OCR
reports pages, re-embedding goes through the pipeline; documents/lifecycle.py clears a
document's progress on every status change (`progress_cleared`).

Each report is one small UPDATE committed on its own (the pipeline's long work runs
outside a transaction), so the admin list and the API see it move while the work runs.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Count, F, FloatField, Q, Sum
from django.db.models.functions import Cast, NullIf
from django.utils import timezone

from documents.models import Document, UploadBatch

EXTRACTING = "extracting"
OCR = "ocr"  # pages read of the total
EMBEDDING = "embedding"  # chunks embedded of the total


def progress_cleared() -> dict[str, Any]:
    """The progress fields of a document no step is working on: merged into every status
    change's UPDATE by documents/lifecycle.py."""
    return {"progress_phase": "", "progress_done": 0, "progress_total": 0}


def progress_report(*, document_id: int, phase: str, done: int, total: int) -> None:
    """One document is at `done` of `total` in `phase` (e.g. pages read by OCR)."""
    progress_report_many(phase=phase, counts={document_id: (done, total)})


def progress_report_many(*, phase: str, counts: dict[int, tuple[int, int]]) -> None:
    """Several documents at once, one statement: {document id: (done, total)}. Only a
    document still processing is touched, so a late report never outlives its work."""
    if not counts:
        return
    ids = list(counts)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE documents_document d SET
                progress_phase = %s, progress_done = c.done, progress_total = c.total
            FROM unnest(%s::bigint[], %s::integer[], %s::integer[]) AS c(id, done, total)
            WHERE d.id = c.id AND d.status = %s
            """,
            [
                phase,
                ids,
                [counts[pk][0] for pk in ids],
                [counts[pk][1] for pk in ids],
                Document.Status.PROCESSING,
            ],
        )


def document_progress(document: Document) -> dict[str, Any] | None:
    """{phase, done, total} while the document is being processed, else None."""
    if document.status != Document.Status.PROCESSING:
        return None
    return {
        "phase": document.progress_phase or EXTRACTING,
        "done": document.progress_done,
        "total": document.progress_total,
    }


# --- Upload batches ---------------------------------------------------------------------


def batch_create() -> UploadBatch:
    """A new batch; pass it to every document_upload of one upload action."""
    return UploadBatch.objects.create()


def batches_mark_started(*, document_ids: list[int]) -> None:
    """A worker claimed these documents: their batches' clocks start now (once)."""
    if document_ids:
        UploadBatch.objects.filter(started__isnull=True, documents__id__in=document_ids).update(
            started=timezone.now()
        )


@dataclass(frozen=True)
class BatchProgress:
    id: str
    total: int
    ready: int
    failed: int
    pending: int
    processing: int
    eta_seconds: int | None  # None until the batch's rate is known

    @property
    def finished(self) -> bool:
        return self.ready + self.failed >= self.total

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "finished": self.finished}


def batch_progress(
    batch_id: uuid.UUID | str, *, now: datetime | None = None
) -> BatchProgress | None:
    """How far a batch got; None if there is no such batch (or no document left in it)."""
    batch = UploadBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return None
    status = Document.Status
    counts = Document.objects.filter(batch=batch).aggregate(
        total=Count("id"),
        ready=Count("id", filter=Q(status=status.READY)),
        failed=Count("id", filter=Q(status=status.FAILED)),
        pending=Count("id", filter=Q(status=status.PENDING)),
        processing=Count("id", filter=Q(status=status.PROCESSING)),
        # Documents part way through count by the fraction of their chunks embedded.
        partial=Sum(
            Cast(F("progress_done"), FloatField()) / NullIf(F("progress_total"), 0),
            filter=Q(status=status.PROCESSING),
        ),
    )
    if not counts["total"]:
        return None
    partial = counts.pop("partial") or 0.0
    eta = _eta(
        batch.started,
        work_done=counts["ready"] + counts["failed"] + partial,
        total=counts["total"],
        now=now or timezone.now(),
    )
    return BatchProgress(id=str(batch.pk), eta_seconds=eta, **counts)


def _eta(started: datetime | None, *, work_done: float, total: int, now: datetime) -> int | None:
    """Time left at the batch's own rate so far (documents settled per second since a
    worker first took one of them)."""
    remaining = total - work_done
    if remaining <= 0:
        return 0
    if started is None or work_done <= 0:
        return None
    elapsed = max((now - started).total_seconds(), 0.0)
    return round(remaining * elapsed / work_done)


# --- Words for people (the admin list and its live updates use the same) ------------------


def progress_label(document: Document) -> str:
    """'embedding 12 of 40 chunks' while processing; empty otherwise."""
    progress = document_progress(document)
    if progress is None:
        return ""
    unit = {EMBEDDING: "chunks", OCR: "pages"}.get(progress["phase"])
    if unit is None or not progress["total"]:
        return f"{progress['phase']}…"
    return f"{progress['phase']} {progress['done']} of {progress['total']} {unit}"


def _duration(seconds: int) -> str:
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def batch_label(progress: BatchProgress) -> str:
    """'3 of 14 ready · 1 failed · about 2 minutes left'."""
    parts = [f"{progress.ready} of {progress.total} ready"]
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    if progress.finished:
        parts.append("done")
    elif progress.eta_seconds is not None:
        parts.append(f"about {_duration(progress.eta_seconds)} left")
    else:
        parts.append("waiting for the first document")
    return " · ".join(parts)

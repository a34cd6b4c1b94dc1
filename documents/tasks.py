"""django-q2 tasks: thin shells that take ids and call services.

Enqueue only through these helpers, after the transaction that created the rows has
committed (django-q issue #154: a worker can otherwise pick up an id it cannot see yet).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

# Small documents share one task so per-task overhead (a database round trip, the
# broker's poll) does not dominate; a large one gets a task of its own.
TASK_MAX_DOCUMENTS = 128
TASK_MAX_BYTES = 8 * 1024 * 1024


def process_documents(document_ids: list[int]) -> None:
    from documents.pipeline import documents_process

    documents_process(document_ids=list(document_ids))


def rebuild_keyword_index(collection_id: int) -> None:
    from documents.keyword_index import keyword_index_rebuild_collection

    with transaction.atomic():
        keyword_index_rebuild_collection(collection_id=collection_id)


def sweep_stuck_documents() -> None:
    from documents.services import documents_sweep_stuck

    documents_sweep_stuck()


def enqueue_documents(documents: list[tuple[int, int]]) -> None:
    """Queue (id, size) pairs after commit, grouped into tasks of a bounded size."""
    groups: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for document_id, size in documents:
        if current and (
            len(current) >= TASK_MAX_DOCUMENTS or current_bytes + size > TASK_MAX_BYTES
        ):
            groups.append(current)
            current, current_bytes = [], 0
        current.append(document_id)
        current_bytes += size
    if current:
        groups.append(current)

    def send() -> None:
        for group in groups:
            async_task("documents.tasks.process_documents", group, task_name=f"process {group[0]}+")

    transaction.on_commit(send)


def schedule_retry(*, document_id: int, delay: timedelta) -> None:
    """django-q2 retries at a fixed interval, so back-off is a one-off schedule of ours."""
    Schedule.objects.create(
        func="documents.tasks.process_documents",
        args=f"[{int(document_id)}]",
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + delay,
        name=f"retry document {document_id} at {timezone.now().isoformat()}",
    )


def ensure_periodic_schedules() -> None:
    Schedule.objects.update_or_create(
        name="sweep stuck documents",
        defaults={
            "func": "documents.tasks.sweep_stuck_documents",
            "schedule_type": Schedule.MINUTES,
            "minutes": max(1, settings.TASK_TIMEOUT // 120),
            "repeats": -1,
        },
    )

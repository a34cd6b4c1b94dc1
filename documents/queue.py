"""Putting work on the broker: task groups, back-off retries, periodic schedules.

Everything here names tasks by their dotted path (django-q2 imports them when it runs
them), so this module imports no other module of the project and anything may import it.

Enqueue only through these helpers: they send after the current transaction commits
(django-q issue #154: a worker could otherwise pick up an id it cannot see yet).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.models import OrmQ, Schedule
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

# Small documents share one task so per-task overhead (a database round trip, the
# broker's poll) does not dominate; a large one gets a task of its own.
TASK_MAX_DOCUMENTS = 128
TASK_MAX_BYTES = 8 * 1024 * 1024

PROCESS_TASK = "documents.tasks.process_documents"
SWEEP_TASK = "documents.tasks.sweep_stuck_documents"
SWEEP_SCHEDULE_NAME = "sweep stuck documents"
ORPHAN_SWEEP_TASK = "documents.tasks.sweep_orphaned_files"
ORPHAN_SWEEP_SCHEDULE_NAME = "sweep orphaned files"
REBUILD_TASK = "documents.tasks.rebuild_keyword_index"
VECTOR_INDEX_TASK = "documents.tasks.sync_vector_indexes"
VECTOR_INDEX_SCHEDULE_NAME = "sync vector indexes"
REEMBED_STAGE_TASK = "documents.tasks.reembed_stage_documents"
REEMBED_FINISH_TASK = "documents.tasks.reembed_finish_collection"
QUERY_LOG_SWEEP_TASK = "insights.tasks.query_log_sweep"
QUERY_LOG_SWEEP_SCHEDULE_NAME = "sweep expired query log"
EVALUATION_TASK = "insights.tasks.evaluation_run_scheduled"
EVALUATION_SCHEDULE_NAME = "evaluate judgment sets"


def task_groups(documents: list[tuple[int, int]]) -> list[list[int]]:
    """(id, size) pairs cut into groups of at most TASK_MAX_DOCUMENTS / TASK_MAX_BYTES."""
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
    return groups


def enqueue_documents(documents: list[tuple[int, int]]) -> None:
    """Queue (id, size) pairs after commit, grouped into tasks of a bounded size."""
    groups = task_groups(documents)

    def send() -> None:
        try:
            for group in groups:
                async_task(PROCESS_TASK, group, task_name=f"process {group[0]}+")
        except Exception:  # noqa: BLE001 - any broker's error (Redis down, database gone)
            # The documents are committed; failing now would answer a stored upload with
            # a 500. They stay pending, and the sweep's orphan pass queues them again.
            logger.warning(
                "could not queue %s document(s); the stuck-document sweep will",
                len(documents),
                exc_info=True,
            )

    if groups:
        transaction.on_commit(send)


def broker_queue_empty() -> bool:
    """No task is waiting in the broker, nor (ORM) handed out and awaiting re-delivery.

    The ORM broker keeps a task's row until it is acknowledged, so a row of any kind
    means something is still coming. Redis pops a task when it hands it out: only the
    waiting list can be asked, and a task a worker holds (running, prefetched, or lost
    with a dead worker) is invisible."""
    broker = get_broker()
    if isinstance(broker, ORM):
        return not OrmQ.objects.exists()
    return int(broker.queue_size() or 0) == 0


def enqueue_keyword_rebuild(collection_id: int) -> None:
    """Re-parse a collection's chunks for keyword search (its language changed), after
    commit: the worker must read the new language."""
    transaction.on_commit(
        lambda: async_task(
            REBUILD_TASK, collection_id, task_name=f"rebuild keyword index {collection_id}"
        )
    )


def enqueue_vector_index_sync() -> None:
    """Build the vector indexes new models need, drop unused ones (after commit: the
    worker must see the collection that needs it)."""
    transaction.on_commit(lambda: async_task(VECTOR_INDEX_TASK, task_name="sync vector indexes"))


def enqueue_reembed_stage(collection_id: int, document_ids: list[int]) -> None:
    """Stage documents for a collection's new model in tasks of TASK_MAX_DOCUMENTS, then
    try the switch (documents/reembed.py); with nothing to stage, the switch at once."""
    groups = [
        document_ids[i : i + TASK_MAX_DOCUMENTS]
        for i in range(0, len(document_ids), TASK_MAX_DOCUMENTS)
    ]

    def send() -> None:
        for group in groups:
            async_task(
                REEMBED_STAGE_TASK, collection_id, group, task_name=f"reembed {collection_id}"
            )
        if not groups:
            enqueue_reembed_finish(collection_id, delay=None)

    transaction.on_commit(send)


def enqueue_reembed_finish(collection_id: int, *, delay: timedelta | None) -> None:
    """Try a collection's model switch now or after ``delay`` (documents in processing
    are waited for)."""
    what = f"reembed switch {collection_id}"
    if delay is None:
        async_task(REEMBED_FINISH_TASK, collection_id, task_name=what)
        return
    _run_once(REEMBED_FINISH_TASK, f"{int(collection_id)}", delay, what)


def schedule_retry(*, document_id: int, delay: timedelta) -> None:
    """django-q2 retries at a fixed interval, so back-off is a one-off schedule of ours."""
    _run_once(PROCESS_TASK, f"[{int(document_id)}]", delay, f"retry document {document_id}")


def _run_once(func: str, args: str, delay: timedelta, what: str) -> None:
    """A one-off schedule: ``func(*args)`` once, ``delay`` from now."""
    Schedule.objects.create(
        func=func,
        args=args,
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + delay,
        name=f"{what} at {timezone.now().isoformat()}",
    )


def ensure_periodic_schedules() -> None:
    """The stuck-document sweep, every minute: a dead worker's documents are taken back
    soon after their heartbeat stops (documents/lifecycle.py), whatever TASK_TIMEOUT is."""
    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": SWEEP_TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": max(1, settings.INGEST_HEARTBEAT_STALE_SECONDS // 60),
            "repeats": -1,
        },
    )
    # Files left by failed saves and killed uploads are removed once an hour old.
    Schedule.objects.update_or_create(
        name=ORPHAN_SWEEP_SCHEDULE_NAME,
        defaults={
            "func": ORPHAN_SWEEP_TASK,
            "schedule_type": Schedule.HOURLY,
            "repeats": -1,
        },
    )
    # Indexes for models whose build was missed (a worker killed mid-build leaves an
    # invalid one, rebuilt here).
    Schedule.objects.update_or_create(
        name=VECTOR_INDEX_SCHEDULE_NAME,
        defaults={"func": VECTOR_INDEX_TASK, "schedule_type": Schedule.HOURLY, "repeats": -1},
    )
    # Query log rows go within an hour of turning QUERY_LOG_RETENTION_DAYS old.
    Schedule.objects.update_or_create(
        name=QUERY_LOG_SWEEP_SCHEDULE_NAME,
        defaults={"func": QUERY_LOG_SWEEP_TASK, "schedule_type": Schedule.HOURLY, "repeats": -1},
    )
    # Every judgment set with its schedule on, once a day (insights/evaluation.py).
    Schedule.objects.update_or_create(
        name=EVALUATION_SCHEDULE_NAME,
        defaults={"func": EVALUATION_TASK, "schedule_type": Schedule.DAILY, "repeats": -1},
    )

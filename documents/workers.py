"""Is a worker running? The one owner of that fact, for the admin's banner and the API.

A worker is seen when it runs any of our tasks (documents/tasks.py records it): the
every-minute stuck-document sweep keeps an idle `qcluster` visible, and a document
whose heartbeat is fresh is proof of a worker busy with a long task. django-q2's own
cluster statistics are no help here: they stay in the worker's memory (`"cache":
"worker"` in settings.Q_CLUSTER), out of the web process's reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from documents.models import Document, WorkerBeat

CLUSTER = "qcluster"
# Right after an upload the worker needs a moment to take the document: a pending
# document younger than this is not yet a sign of a missing worker.
_PICKUP_GRACE = timedelta(seconds=10)


def worker_seen() -> None:
    """Record that a worker is running now."""
    WorkerBeat.objects.update_or_create(name=CLUSTER, defaults={"seen_at": timezone.now()})


def worker_last_seen() -> datetime | None:
    """The last sign of life of any worker: a task it ran, or a heartbeat it wrote."""
    beat = WorkerBeat.objects.aggregate(last=Max("seen_at"))["last"]
    heartbeat = Document.objects.filter(status=Document.Status.PROCESSING).aggregate(
        last=Max("heartbeat_at")
    )["last"]
    signs = [moment for moment in (beat, heartbeat) if moment is not None]
    return max(signs) if signs else None


@dataclass(frozen=True)
class WorkerNotice:
    last_seen: datetime | None
    message: str

    def as_dict(self) -> dict[str, str | None]:
        seen = self.last_seen.isoformat() if self.last_seen else None
        return {"worker_seen_at": seen, "message": self.message}


def document_waits_for_worker(document: Document, *, now: datetime | None = None) -> bool:
    """A pending document that a running worker would have taken by now (not one
    waiting for a scheduled retry)."""
    now = now or timezone.now()
    return (
        document.status == Document.Status.PENDING
        and document.updated < now - _PICKUP_GRACE
        and (document.retry_at is None or document.retry_at <= now)
    )


def _waiting(documents: QuerySet[Document], now: datetime) -> bool:
    # The same test as document_waits_for_worker, in SQL.
    return (
        documents.filter(status=Document.Status.PENDING, updated__lt=now - _PICKUP_GRACE)
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .exists()
    )


def worker_missing() -> WorkerNotice | None:
    """A notice when no worker has been seen for WORKER_STALE_SECONDS, whatever waits."""
    last_seen = worker_last_seen()
    stale = timedelta(seconds=settings.WORKER_STALE_SECONDS)
    if last_seen is not None and timezone.now() - last_seen < stale:
        return None
    since = f"since {timezone.localtime(last_seen):%Y-%m-%d %H:%M:%S %Z}" if last_seen else "yet"
    return WorkerNotice(
        last_seen=last_seen,
        message=(
            f"No worker has run {since}; start one with `python manage.py qcluster` "
            "(`make run` starts one) — documents stay pending until then."
        ),
    )


def worker_notice(*, documents: QuerySet[Document] | None = None) -> WorkerNotice | None:
    """The notice when documents (of `documents`, default all) wait for a worker that has
    not been seen for WORKER_STALE_SECONDS; None when all is well."""
    queryset = Document.objects.all() if documents is None else documents
    if not _waiting(queryset, timezone.now()):
        return None
    return worker_missing()

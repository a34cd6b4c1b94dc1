"""django-q2 task entry points: thin shells that take ids and call services.

Tasks are queued through documents/queue.py (after commit), which names them by their
dotted path; nothing imports this module but the worker.
"""

from __future__ import annotations

from django.db import transaction

from documents.keyword_index import keyword_index_rebuild_collection
from documents.lifecycle import documents_sweep_stuck
from documents.pipeline import documents_process
from documents.services import files_sweep_orphaned
from documents.workers import worker_seen


def process_documents(document_ids: list[int]) -> None:
    worker_seen()  # for the "no worker is running" notice (documents/workers.py)
    documents_process(document_ids=list(document_ids))


def rebuild_keyword_index(collection_id: int) -> None:
    with transaction.atomic():
        keyword_index_rebuild_collection(collection_id=collection_id)


def sweep_stuck_documents() -> None:
    worker_seen()  # every minute while a worker runs, busy or not
    documents_sweep_stuck()


def sweep_orphaned_files() -> None:
    files_sweep_orphaned()

"""django-q2 task entry points: thin shells that take ids and call services.

Tasks are queued through documents/queue.py (after commit), which names them by their
dotted path; nothing imports this module but the worker.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction

from documents.keyword_index import keyword_index_rebuild_collection
from documents.lifecycle import documents_sweep_stuck
from documents.models import Collection
from documents.pipeline import documents_process
from documents.queue import enqueue_reembed_finish, enqueue_reembed_stage
from documents.reembed import reembed_finish, reembed_missing, reembed_stage
from documents.stored_files import files_sweep_orphaned
from documents.vector_index import vector_indexes_sync
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


def sync_vector_indexes() -> None:
    vector_indexes_sync()


def reembed_stage_documents(collection_id: int, document_ids: list[int]) -> None:
    worker_seen()
    reembed_stage(collection_id=collection_id, document_ids=list(document_ids))
    enqueue_reembed_finish(collection_id, delay=None)


def reembed_finish_collection(collection_id: int) -> None:
    """Switch when everything is staged; otherwise stage what is missing (documents
    added or changed meanwhile) and try again in a minute."""
    if reembed_finish(collection_id=collection_id):
        return
    collection = Collection.objects.filter(pk=collection_id, reembed_target__isnull=False).first()
    if collection is None:
        return
    missing = reembed_missing(collection)
    if missing:
        with transaction.atomic():
            enqueue_reembed_stage(collection_id, missing)
    else:
        enqueue_reembed_finish(collection_id, delay=timedelta(minutes=1))

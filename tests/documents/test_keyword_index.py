"""The BM25 keyword index (documents/keyword_index.py), called directly: statistics stay
exactly what the chunks say through indexing, unindexing and rebuilds; the insert from
staging computes the weights a rebuild would; and every writer locks the statistics
row before any term row, so a worker and a delete cannot deadlock."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from documents.keyword_index import (
    collections_needing_rebuild,
    keyword_index_rebuild_collection,
    keyword_unindex_documents,
)
from documents.models import Chunk, CollectionTermStats, TermDocumentFrequency
from tests.helpers.worker import database_url, wait_until

TEXTS = {
    "a.txt": "Enzymes speed up reactions. Enzymes are proteins that fold.",
    "b.txt": "Proteins fold into shapes; misfolded proteins cause disease.",
    "c.txt": "Reactions in cells need energy from ATP and enzymes.",
}


def _expected_statistics(collection_id: int) -> tuple[tuple[int, int], dict[str, int]]:
    """(chunk count, total length) and document frequencies, recomputed from the chunks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(keyword_length), 0) FROM documents_chunk "
            "WHERE collection_id = %s",
            [collection_id],
        )
        totals = cursor.fetchone()
        cursor.execute(
            "SELECT t.lexeme, count(*) FROM documents_chunk c, unnest(c.search_vector) t "
            "WHERE c.collection_id = %s GROUP BY t.lexeme",
            [collection_id],
        )
        return (int(totals[0]), int(totals[1])), dict(cursor.fetchall())


def _statistics(collection_id: int) -> tuple[tuple[int, int], dict[str, int]]:
    stats = CollectionTermStats.objects.filter(collection_id=collection_id).first()
    totals = (stats.chunk_count, stats.total_length) if stats else (0, 0)
    frequencies = dict(
        TermDocumentFrequency.objects.filter(collection_id=collection_id).values_list(
            "lexeme", "df"
        )
    )
    return totals, frequencies


def test_statistics_follow_indexing_and_unindexing_exactly(collection: Any, ingest: Any) -> None:
    documents = ingest(collection, TEXTS)
    assert _statistics(collection.pk) == _expected_statistics(collection.pk)
    assert _statistics(collection.pk)[1]["enzym"] == 2  # two chunks mention enzymes

    with transaction.atomic():
        keyword_unindex_documents(document_ids=[documents[0].pk])
        Chunk.objects.filter(document=documents[0]).delete()
    assert _statistics(collection.pk) == _expected_statistics(collection.pk)
    assert _statistics(collection.pk)[1]["enzym"] == 1
    # A term no chunk holds any more leaves the table instead of staying at 0.
    assert "speed" not in _statistics(collection.pk)[1]


def test_insert_from_staging_weighs_as_a_rebuild_would(collection: Any, ingest: Any) -> None:
    ingest(collection, TEXTS)  # the collection's first chunks: the batch's own average
    inserted = dict(Chunk.objects.filter(collection=collection).values_list("pk", "bm25"))
    with transaction.atomic():
        keyword_index_rebuild_collection(collection_id=collection.pk)
    rebuilt = dict(Chunk.objects.filter(collection=collection).values_list("pk", "bm25"))
    assert inserted.keys() == rebuilt.keys()
    for pk, vector in inserted.items():
        again = rebuilt[pk]
        assert vector is not None and again is not None
        assert vector.indices() == again.indices()
        assert vector.values() == pytest.approx(again.values(), rel=1e-6)
    assert _statistics(collection.pk) == _expected_statistics(collection.pk)


def test_drift_of_the_average_length_asks_for_a_rebuild(collection: Any, ingest: Any) -> None:
    ingest(collection, {"short.txt": "Enzymes."})
    assert collections_needing_rebuild(collection_ids=[collection.pk]) == []
    CollectionTermStats.objects.filter(collection=collection).update(indexed_avgdl=10)
    assert collections_needing_rebuild(collection_ids=[collection.pk]) == [collection.pk]
    with transaction.atomic():
        keyword_index_rebuild_collection(collection_id=collection.pk, reanalyse=False)
    assert collections_needing_rebuild(collection_ids=[collection.pk]) == []


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_waits_for_the_statistics_row_before_touching_term_rows(
    collection: Any,
) -> None:
    """The order that caused a deadlock with a concurrent delete: a rebuild used to take
    the term rows first and the statistics row last, the delete the other way round."""
    from tests.conftest import ingest_files

    ingest_files(collection, TEXTS)
    errors: list[BaseException] = []

    def rebuild() -> None:
        try:
            with transaction.atomic():
                keyword_index_rebuild_collection(collection_id=collection.pk)
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    with (
        psycopg.connect(database_url()) as holder,  # plays a delete that took the row
        psycopg.connect(database_url(), autocommit=True) as observer,
    ):
        holder.execute(
            "SELECT 1 FROM documents_collectiontermstats WHERE collection_id = %s FOR UPDATE",
            [collection.pk],
        )
        thread = threading.Thread(target=rebuild)
        thread.start()
        wait_until(
            lambda: (
                observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchall()[0][0]
                >= 1
            ),
            timeout=30,
            what="the rebuild to wait for the statistics row",
            workers=[],
        )
        time.sleep(0.3)  # had it any term rows, it would hold them by now
        # The term rows are free: the delete holding the statistics row can finish.
        with observer.transaction():
            locked = observer.execute(
                "SELECT count(*) FROM (SELECT 1 FROM documents_termdocumentfrequency "
                "WHERE collection_id = %s FOR UPDATE NOWAIT) AS t",
                [collection.pk],
            ).fetchall()[0][0]
        assert locked > 0
        holder.commit()
        thread.join(timeout=60)
    assert not thread.is_alive() and not errors, errors
    assert _statistics(collection.pk) == _expected_statistics(collection.pk)


@pytest.mark.django_db(transaction=True)
def test_deleting_a_collection_waits_for_a_finalizing_worker_before_touching_term_rows(
    collection: Any,
) -> None:
    """A worker starting its finalize holds its documents and goes on to the statistics
    and term rows; a collection delete used to take those rows first and then wait for
    the documents (a deadlock: the task failed). Now it queues behind the worker."""
    from documents.models import Collection, Document
    from documents.services import collection_delete
    from tests.conftest import ingest_files

    (document,) = ingest_files(collection, {"a.txt": TEXTS["a.txt"]})
    errors: list[BaseException] = []

    def delete() -> None:
        try:
            collection_delete(collection=Collection.objects.get(pk=collection.pk))
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    with (
        psycopg.connect(database_url()) as worker,
        psycopg.connect(database_url(), autocommit=True) as observer,
    ):
        worker.execute("SELECT 1 FROM documents_document WHERE id = %s FOR UPDATE", [document.pk])
        thread = threading.Thread(target=delete)
        thread.start()
        wait_until(
            lambda: (
                observer.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                ).fetchall()[0][0]
                >= 1
            ),
            timeout=30,
            what="the delete to wait for the worker",
            workers=[],
        )
        time.sleep(0.3)
        with observer.transaction():  # the worker's next steps: the rows are free
            locked = observer.execute(
                "SELECT count(*) FROM (SELECT 1 FROM documents_termdocumentfrequency "
                "WHERE collection_id = %s FOR UPDATE NOWAIT) AS t",
                [collection.pk],
            ).fetchall()[0][0]
        assert locked > 0
        with observer.transaction():
            stats = observer.execute(
                "SELECT count(*) FROM (SELECT 1 FROM documents_collectiontermstats "
                "WHERE collection_id = %s FOR UPDATE NOWAIT) AS t",
                [collection.pk],
            ).fetchall()[0][0]
        assert stats == 1
        worker.commit()
        thread.join(timeout=60)
    assert not thread.is_alive() and not errors, errors
    assert not Collection.objects.filter(pk=collection.pk).exists()
    assert not Document.objects.filter(pk=document.pk).exists()
    assert not TermDocumentFrequency.objects.filter(collection_id=collection.pk).exists()


def test_the_scale_benchmark_loads_through_the_pipelines_insert(collection: Any) -> None:
    """bench/_scale_parts.py stages synthetic chunks where the pipeline does and inserts
    them with the same statement: the loaded chunks carry keyword weights."""
    import numpy as np

    from bench._scale_parts import load_batch
    from documents.models import PendingChunk
    from tests.factories import DocumentFactory

    document = DocumentFactory.create(collection=collection)
    vectors = np.full((2, 384), 1 / np.sqrt(384), dtype=np.float32)
    with transaction.atomic():
        load_batch([document.pk] * 2, [0, 1], ["Enzymes fold.", "Proteins bind."], vectors)
    rows = list(
        Chunk.objects.filter(document=document)
        .order_by("ordinal")
        .values_list("text", "char_end", "heading_path", "collection_id")
    )
    assert rows == [
        ("Enzymes fold.", 13, [], collection.pk),
        ("Proteins bind.", 14, [], collection.pk),
    ]
    assert Chunk.objects.filter(document=document, bm25__isnull=False).count() == 2
    assert not PendingChunk.objects.exists()

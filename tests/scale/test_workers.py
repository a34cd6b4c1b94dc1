"""Three real workers (`manage.py qcluster`, separate processes as on separate hosts) on one
ORM broker: every document ends ready once with exactly the chunks a clean run makes, even
though one worker is SIGKILLed in the middle of a document (the stuck-document sweep
hands its document to the others)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db.models import Count
from rest_framework.test import APIClient

from documents.chunking import chunk_document
from documents.extraction import extract
from documents.models import Chunk, Document, PendingChunk
from tests.helpers.worker import Worker, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DOCUMENTS = 9
WORKERS = 3
BATCH = 4  # embeddings stored per batch: many batches per document, so a kill lands inside one


# 48 paragraphs make about 50 chunks: with int8 embedding a 14-paragraph document was
# embedded in well under a second, so the moment when all three workers hold one
# mid-way was too short to be seen reliably (CI once waited 180 s for it in vain).
def _text(seed: int, paragraphs: int = 48) -> str:
    rng = random.Random(seed)
    words = (
        "volcano glacier river delta basalt granite erosion sediment magma crust plate "
        "tectonic fault quake mantle canyon dune coral reef tide current"
    ).split()
    return "\n\n".join(
        f"Part {i} of {seed}. " + " ".join(rng.choice(words) for _ in range(140)) + "."
        for i in range(paragraphs)
    )


def _expected_chunks(text: str) -> int:
    spans = chunk_document(
        extract(text.encode(), filename="x.txt"),
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        min_tokens=settings.CHUNK_MIN_TOKENS,
    )
    return len(spans)


@pytest.mark.timeout(420)
def test_three_workers_one_killed_every_document_ready_once_with_exact_chunks(
    start_worker: Callable[..., Worker], user_client: APIClient, collection: Any
) -> None:
    from documents.queue import ensure_periodic_schedules

    ensure_periodic_schedules()  # the stuck-document sweep recovers the killed one's document
    # The killed cluster had also taken the next tasks from the broker (its pusher
    # prefetches while its worker runs one); their documents are still pending, not
    # claimed, so no heartbeat goes stale: the broker hands those tasks out again
    # TASK_TIMEOUT + TASK_RETRY_MARGIN after it gave them (11 minutes by default; 75 s
    # here). The document that was mid-way is claimed again by the sweep on its stale
    # heartbeat (8 s here), or by that re-delivery, whichever comes first.
    limits = {
        "TASK_TIMEOUT": "60",
        "TASK_RETRY_MARGIN": "15",
        "INGEST_HEARTBEAT_STALE_SECONDS": "8",
        "EMBEDDING_BATCH_SIZE": str(BATCH),
    }
    workers = [start_worker(**limits) for _ in range(WORKERS)]
    texts = {f"part-{i}.txt": _text(i) for i in range(DOCUMENTS)}
    expected: dict[int, int] = {}
    for name, text in texts.items():
        response = user_client.post(
            "/api/v1/documents/",
            {"collection": collection.slug, "text": text, "title": name},
            format="json",
        )
        assert response.status_code == 202, response.content
        expected[response.json()["id"]] = _expected_chunks(text)
    assert min(expected.values()) >= 3 * BATCH

    def all_busy() -> bool:
        # One task at a time per worker: three documents mid-way means each worker holds one.
        busy = PendingChunk.objects.filter(document__status="processing")
        return busy.values("document_id").distinct().count() == WORKERS

    wait_until(all_busy, timeout=180, what="all three workers mid-document", workers=workers)
    workers[0].kill()

    wait_until(
        lambda: (
            not Document.objects.filter(pk__in=expected)
            .exclude(status__in=("ready", "failed"))
            .exists()
        ),
        timeout=300,
        what="every document to be finished",
        workers=workers,
    )
    documents = Document.objects.filter(pk__in=expected)
    assert {d.pk: d.status for d in documents} == dict.fromkeys(expected, "ready")
    counts = dict(
        Chunk.objects.filter(document_id__in=expected)
        .values("document_id")
        .annotate(n=Count("id"))
        .values_list("document_id", "n")
    )
    assert counts == expected  # none lost, none twice
    for pk, n in expected.items():
        ordinals = list(Chunk.objects.filter(document_id=pk).values_list("ordinal", flat=True))
        assert sorted(ordinals) == list(range(n))
    assert {d.pk: d.chunk_count for d in documents} == expected
    assert not PendingChunk.objects.filter(document_id__in=expected).exists()
    # The kill landed inside a document: one was claimed again after its worker died.
    assert max(d.attempts for d in documents) >= 2

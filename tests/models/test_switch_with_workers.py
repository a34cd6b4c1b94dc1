"""A collection's model change done by real workers while searches go on: every search
before, during and after the switch returns the full result count from one model, and a
worker SIGKILLed mid-staging is replaced by another that finishes the change with exactly
one set of chunks per document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Count

from documents.models import Chunk, Collection, Document, PendingChunk
from documents.reembed import collection_reembed_start, target_spec
from search.retrieval import SearchParams, search
from tests.factories import CollectionFactory
from tests.helpers.embedding_server import FakeEmbeddingServer
from tests.helpers.worker import Worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow]

TOPICS = [
    "mitochondria make the energy of the cell",
    "glaciers retreat as summers grow warmer",
    "volcanoes erupt lava over the island",
    "aspirin lowers the risk of a heart attack",
    "the violin has four strings tuned in fifths",
    "tides follow the pull of the moon",
    "bees dance to show where the flowers are",
    "rust forms when iron meets water and air",
    "the printing press spread books across Europe",
    "owls hunt at night by hearing alone",
]
OLD, NEW = "all-MiniLM-L6-v2", "fake-server"


@pytest.mark.timeout(240)
def test_search_serves_full_results_through_a_killed_and_resumed_switch(
    start_worker: Callable[..., Worker], ingest: Any
) -> None:
    collection: Any = CollectionFactory.create(is_public=True)
    ingest(collection, {f"topic-{i}.txt": text for i, text in enumerate(TOPICS)})
    seen: list[tuple[str, ...]] = []

    def search_full() -> None:
        """One search as a user would run it: every document, from exactly one model."""
        response = search(
            SearchParams(query="energy of the cell", mode="semantic", top_k=50), user=None
        )
        assert len(response.results) == len(TOPICS), response
        assert len(response.models) == 1, response.models
        seen.append(tuple(response.models))

    def searching(condition: Callable[[], Any]) -> Callable[[], Any]:
        def check() -> Any:
            search_full()
            return condition()

        return check

    search_full()
    with FakeEmbeddingServer(dimensions=32) as server:
        server.delay = 0.4  # each batch of two chunks: slow enough to be killed mid-way
        # A task's lease is set by the worker that takes it: TASK_TIMEOUT +
        # TASK_RETRY_MARGIN, after which the broker hands it out again.
        lease = {"EMBEDDING_BATCH_SIZE": "2", "TASK_TIMEOUT": "10", "TASK_RETRY_MARGIN": "1"}
        first = start_worker(**lease)
        spec = target_spec(model=NEW, backend="openai", location=server.base_url, dimensions=32)
        collection_reembed_start(collection=collection, spec=spec)
        wait_until(
            searching(lambda: PendingChunk.objects.count() >= 2),
            timeout=90,
            what="the first worker to stage some chunks",
            workers=[first],
        )
        first.kill()
        staged = PendingChunk.objects.count()
        assert staged < len(TOPICS)
        assert Collection.objects.get(pk=collection.pk).reembed_target is not None
        search_full()

        # Another worker takes the killed task back once its lease runs out, and resumes
        # from the staged rows.
        server.delay = 0
        second = start_worker(**lease)
        wait_until(
            searching(lambda: Collection.objects.get(pk=collection.pk).reembed_target is None),
            timeout=120,
            what="the second worker to stage the rest and switch",
            workers=[first, second],
        )
        search_full()  # now through the server's model
        resumed = [text for request in server.inputs for text in request]

    assert seen[0] == (OLD,) and seen[-1] == (NEW,)
    assert set(seen) == {(OLD,), (NEW,)}  # never a mix, never short
    # The chunks staged before the kill were not embedded again.
    assert len(resumed) <= len(TOPICS) + 2 + len(seen)
    chunks = Chunk.objects.filter(document__collection=collection)
    assert set(chunks.values_list("embedding_model", flat=True)) == {NEW}
    per_document = dict(chunks.values_list("document_id").annotate(n=Count("id")))
    expected = dict(Document.objects.values_list("pk", "chunk_count"))
    assert per_document == expected and sum(expected.values()) == len(TOPICS)
    assert not chunks.values("document_id", "ordinal").annotate(n=Count("id")).filter(n__gt=1)
    assert not PendingChunk.objects.exists()

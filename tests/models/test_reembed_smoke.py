"""A collection moved to another model: staged beside, switched at once."""

from __future__ import annotations

from typing import Any

from documents.models import Chunk, Collection
from documents.reembed import (
    collection_reembed_start,
    reembed_finish,
    reembed_missing,
    reembed_progress,
    reembed_stage,
    target_spec,
)
from search.retrieval import SearchParams, search


def test_a_model_change_stages_beside_and_switches_in_one_step(
    collection: Any, ingest: Any
) -> None:
    collection.is_public = True
    collection.save()
    ingest(
        collection,
        {"a.txt": "Mitochondria are the powerhouse of the cell.", "b.txt": "Glaciers melt."},
    )
    old_ids = set(Chunk.objects.values_list("id", flat=True))
    spec = target_spec(model="minilm-renamed", dimensions=384)
    progress = collection_reembed_start(collection=collection, spec=spec)
    assert (progress.staged, progress.total, progress.target) == (0, 2, "minilm-renamed")
    missing = reembed_missing(collection)
    reembed_stage(collection_id=collection.pk, document_ids=missing[:1])
    assert reembed_finish(collection_id=collection.pk) is False
    # Half staged: search still serves the old model's chunks, all of them.
    response = search(SearchParams(query="powerhouse cell", mode="semantic"), user=None)
    assert response.total == 2 and response.models == ["all-MiniLM-L6-v2"]
    reembed_stage(collection_id=collection.pk, document_ids=missing[1:])
    assert reembed_progress(collection).staged == 2
    assert reembed_finish(collection_id=collection.pk) is True
    collection = Collection.objects.get(pk=collection.pk)
    assert collection.embedding_model == "minilm-renamed" and collection.reembed_target is None
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"minilm-renamed"}
    assert not set(Chunk.objects.values_list("id", flat=True)) & old_ids
    response = search(SearchParams(query="powerhouse cell", mode="semantic"), user=None)
    assert response.total == 2 and response.models == ["minilm-renamed"]


def test_a_document_that_cannot_be_read_again_fails_and_does_not_block_the_switch(
    collection: Any, ingest: Any
) -> None:
    """Found in review: the worker's staging and switch tasks re-queued each other forever
    when a READY document's original was gone."""
    from documents.models import Document

    gone, kept = ingest(collection, {"a.txt": "Mitochondria make ATP.", "b.txt": "Glaciers melt."})
    gone.original.storage.delete(gone.original.name)
    spec = target_spec(model="minilm-renamed", dimensions=384)
    collection_reembed_start(collection=collection, spec=spec)
    reembed_stage(collection_id=collection.pk, document_ids=reembed_missing(collection))
    gone = Document.objects.get(pk=gone.pk)
    assert gone.status == "failed" and "model change to minilm-renamed" in gone.error
    assert reembed_finish(collection_id=collection.pk) is True
    assert not Chunk.objects.filter(document=gone).exists()
    assert set(Chunk.objects.filter(document=kept).values_list("embedding_model", flat=True)) == {
        "minilm-renamed"
    }


def test_manage_py_check_names_an_embedding_setting_that_cannot_work(
    settings: Any, tmp_path: Any
) -> None:
    from django.core import checks

    def ids() -> set[str]:
        return {message.id for message in checks.run_checks() if message.id}

    assert not {i for i in ids() if i.startswith("documents.")}
    settings.EMBEDDING_MODEL_PATH = str(tmp_path / "nope")
    assert "documents.E003" in ids()
    settings.EMBEDDING_BACKEND = "openai"
    settings.EMBEDDING_BASE_URL = ""
    assert "documents.E002" in ids()
    settings.EMBEDDING_BACKEND = "gpu"
    assert "documents.E001" in ids()

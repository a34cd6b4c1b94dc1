"""The backend switch, thread counts, model names across an upgrade, and the query cache."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from documents import embedding
from documents.embedding import (
    EmbeddingError,
    active_model_name,
    embed_query,
    embed_texts,
    get_model,
    preload,
    readiness,
    search_model_name,
)
from documents.embedding._manifest import OnnxExport
from documents.lifecycle import document_reembed
from documents.models import Chunk, Document
from documents.pipeline import documents_process
from search.retrieval import SearchParams, search
from tests.inference.conftest import reset_embedding_state

TEXTS = [
    "Aspirin lowers the risk of a second heart attack.",
    "Glaciers retreat as average temperatures rise.",
]
FP32 = "all-MiniLM-L6-v2"


@pytest.fixture
def torch_threads() -> Any:
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_both_backends_embed_alike_with_the_threads_they_are_given(
    fresh_embedding: Any, onnx_export: OnnxExport, torch_threads: Any
) -> None:
    fresh_embedding.EMBEDDING_THREADS = 1
    vectors = {}
    for backend in ("torch", "onnx"):
        fresh_embedding.EMBEDDING_BACKEND = backend
        vectors[backend] = embed_texts(TEXTS)
        assert get_model().kind == backend
        assert active_model_name() == FP32  # the export agrees: same name, same vectors
    assert torch_threads.get_num_threads() == 1
    session_options = get_model("onnx").session.get_session_options()  # type: ignore[attr-defined]
    assert session_options.intra_op_num_threads == 1
    cosines = np.sum(vectors["torch"] * vectors["onnx"], axis=1)
    assert cosines.min() > 0.98, cosines
    # Each text stays closest to its own counterpart across the backends.
    assert (vectors["torch"] @ vectors["onnx"].T).argmax(axis=1).tolist() == [0, 1]


def test_an_unknown_backend_is_a_clear_error(fresh_embedding: Any) -> None:
    fresh_embedding.EMBEDDING_BACKEND = "gpu"
    with pytest.raises(EmbeddingError, match="EMBEDDING_BACKEND='gpu': use one of onnx, torch"):
        embed_texts(TEXTS)


def _semantic_hits(query: str) -> list[str]:
    params = SearchParams(query=query, mode="semantic", top_k=3)
    response = search(params, user=None, full_access=True)
    return [r.source_name for r in response.results]


@pytest.mark.timeout(240)
def test_an_export_that_disagrees_gets_its_own_name_and_search_keeps_the_fp32_vectors(
    fresh_embedding: Any, onnx_export: OnnxExport, collection: Any, ingest: Any
) -> None:
    """Point 2 of issue 15: an upgrade never darkens the semantic leg. Documents embedded
    in fp32 keep serving (queried in fp32) until reembed has replaced all of them."""
    fresh_embedding.EMBEDDING_BACKEND = "torch"
    (old,) = ingest(collection, {"heart.txt": "Aspirin after a heart attack prevents another."})
    assert old.embedding_model == FP32

    # The upgrade, with an export that does not reach the required agreement.
    fresh_embedding.EMBEDDING_BACKEND = "onnx"
    fresh_embedding.EMBEDDING_ONNX_MIN_AGREEMENT = 0.9999
    reset_embedding_state()
    assert active_model_name() == FP32 + "+onnx-int8"
    assert search_model_name() == FP32  # the fp32 vectors are still all there is
    # A served process preloads both: the export for new chunks, fp32 for the queries.
    preload(background=False)
    assert readiness() is None
    assert {kind for kind, _ in embedding._models} == {"torch", "onnx"}
    assert _semantic_hits("aspirin heart") == ["heart.txt"]

    # New documents get the new name meanwhile; reembed moves the old one over.
    (new,) = ingest(collection, {"ice.txt": "Glaciers melt faster in warm summers."})
    assert new.embedding_model == FP32 + "+onnx-int8"
    document_reembed(document=Document.objects.get(pk=old.pk))
    documents_process(document_ids=[old.pk])
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {FP32 + "+onnx-int8"}

    embedding._old_vectors.clear()  # skip the minute a process trusts its last answer
    assert search_model_name() == FP32 + "+onnx-int8"
    assert _semantic_hits("aspirin heart")[0] == "heart.txt"
    assert _semantic_hits("glacier melting")[0] == "ice.txt"


def test_a_repeated_query_is_served_from_the_cache(
    fresh_embedding: Any, onnx_export: OnnxExport, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = get_model()
    calls: list[list[str]] = []
    real_embed = model.embed

    def counting_embed(texts: list[str], batch_size: int) -> np.ndarray:
        calls.append(texts)
        return real_embed(texts, batch_size)

    monkeypatch.setattr(model, "embed", counting_embed)
    first = embed_query("aspirin  and heart attacks")
    again = embed_query(" aspirin and\nheart attacks ")  # the same query, spaced otherwise
    assert len(calls) == 1
    assert np.array_equal(first, again) and not again.flags.writeable
    embed_query("glacier melting")
    assert len(calls) == 2

    fresh_embedding.EMBEDDING_QUERY_CACHE_SIZE = 1  # the least recently used goes first
    embedding.query_cache.clear()
    for query in ("volcano", "lava", "volcano", "volcano"):
        embed_query(query)
    assert len(calls) == 5

    fresh_embedding.EMBEDDING_QUERY_CACHE_SIZE = 0  # off
    embedding.query_cache.clear()
    embed_query("volcano")
    embed_query("volcano")
    assert len(calls) == 7

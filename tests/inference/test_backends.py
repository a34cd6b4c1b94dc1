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
)
from documents.embedding._manifest import OnnxExport
from search.retrieval import SearchParams, search
from tests.factories import CollectionFactory
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
    with pytest.raises(
        EmbeddingError, match="EMBEDDING_BACKEND='gpu': use one of onnx, torch, openai"
    ):
        embed_texts(TEXTS)


def _semantic_hits(query: str) -> list[str]:
    params = SearchParams(query=query, mode="semantic", top_k=3)
    response = search(params, user=None, full_access=True)
    return [r.source_name for r in response.results]


@pytest.mark.timeout(240)
def test_an_export_that_disagrees_gets_its_own_name_and_old_collections_keep_fp32(
    fresh_embedding: Any, onnx_export: OnnxExport, collection: Any, ingest: Any
) -> None:
    """Point 2 of issue 15, with issue 16's per-collection models: an upgrade never
    darkens the semantic leg. A collection embedded in fp32 keeps its fp32 model (and is
    queried with it) until `reembed` moves it; new collections get the int8 name."""
    fresh_embedding.EMBEDDING_BACKEND = "torch"
    collection.embedding_model = ""  # records the settings' model again, now torch
    collection.save()
    assert collection.embedding_backend == "torch"
    (old,) = ingest(collection, {"heart.txt": "Aspirin after a heart attack prevents another."})
    assert old.embedding_model == FP32

    # The upgrade, with an export that does not reach the required agreement.
    fresh_embedding.EMBEDDING_BACKEND = "onnx"
    fresh_embedding.EMBEDDING_ONNX_MIN_AGREEMENT = 0.9999
    reset_embedding_state()
    assert active_model_name() == FP32 + "+onnx-int8"
    preload(background=False)
    assert readiness() is None
    assert _semantic_hits("aspirin heart") == ["heart.txt"]  # queried with torch, fp32
    assert {key[0] for key in embedding._models} == {"torch", "onnx"}

    # A new collection records the new name; both are searched, each by its own model.
    newer = CollectionFactory.create()
    assert (newer.embedding_model, newer.embedding_backend) == (FP32 + "+onnx-int8", "onnx")
    (new,) = ingest(newer, {"ice.txt": "Glaciers melt faster in warm summers."})
    assert new.embedding_model == FP32 + "+onnx-int8"
    # Each model's best meets the other's by rank (their scores are not comparable).
    assert set(_semantic_hits("glacier melting")) == {"heart.txt", "ice.txt"}


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

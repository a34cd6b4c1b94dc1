"""The embedding model, loaded lazily: importing this package imports neither torch nor
onnxruntime.

Two backends (EMBEDDING_BACKEND):
- ``onnx`` (default): the packaged weights exported to int8 ONNX by `manage.py
  prepare_models` (documents/embedding/export.py), run with onnxruntime; no torch in the
  process.
- ``torch``: the fp32 weights through sentence-transformers.

Model names (what chunks record, what search filters on): the onnx backend records the
fp32 name when its export agrees with fp32 (manifest mean cosine >= EMBEDDING_ONNX_MIN_AGREEMENT),
so existing chunks keep serving; otherwise it records ``<name>+onnx-int8`` and, until
`reembed` has replaced every document's fp32 vectors, search keeps querying those with the
fp32 model (search_model_name()) so that the semantic leg never goes dark.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

import numpy as np
from django.conf import settings
from django.db import DatabaseError

from documents.embedding._cache import QueryCache, normalise_query
from documents.embedding._source import EmbeddingError, model_path

__all__ = [
    "EmbeddingError",
    "active_model_name",
    "backend_name",
    "embed_query",
    "embed_texts",
    "get_model",
    "is_loaded",
    "preload",
    "readiness",
    "model_path",
    "query_cache",
    "search_model_name",
]

logger = logging.getLogger(__name__)

BACKENDS = ("onnx", "torch")
ONNX_SUFFIX = "+onnx-int8"
# How long a process trusts its answer to "are fp32 vectors still being served?".
_OLD_VECTORS_RECHECK_SECONDS = 60.0


class Backend(Protocol):
    kind: str
    path: str

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray: ...


_lock = threading.Lock()
_models: dict[tuple[str, str], Backend] = {}
_agreements: dict[str, float] = {}
_old_vectors: dict[str, tuple[bool, float]] = {}
# Set by preload(): a served process (gunicorn worker, `make run`'s runserver) is not ready
# until its model is loaded, so that its first search is as fast as the tenth.
_preload: dict[str, str | None] = {"state": None, "error": None}
query_cache = QueryCache()


def backend_name() -> str:
    backend = str(settings.EMBEDDING_BACKEND)
    if backend not in BACKENDS:
        raise EmbeddingError(f"EMBEDDING_BACKEND={backend!r}: use one of {', '.join(BACKENDS)}")
    return backend


def _load(kind: str, path: str) -> Backend:
    if kind == "torch":
        from documents.embedding._torch import TorchBackend

        return TorchBackend(path)
    from documents.embedding._onnx import OnnxBackend

    return OnnxBackend.for_model(path)


def get_model(kind: str | None = None) -> Backend:
    """The loaded backend (EMBEDDING_BACKEND unless ``kind``), once per process and model
    path. A failed load is not remembered: the next call tries again."""
    key = (kind or backend_name(), model_path())
    with _lock:
        if key not in _models:
            _models[key] = _load(*key)
        return _models[key]


def is_loaded() -> bool:
    """Whether this process has loaded the backend it serves with (/readyz)."""
    try:
        return (backend_name(), model_path()) in _models
    except EmbeddingError:
        return False


def preload(*, background: bool) -> None:
    """Load the backend now (gunicorn's post_worker_init) or in a thread while the server
    starts answering (runserver); until it is loaded, readiness() says so and a search
    waits for this load instead of starting its own."""
    _preload["state"] = "loading"

    def load() -> None:
        try:
            get_model()
            if search_model_name() != active_model_name():
                get_model("torch")  # fp32 vectors still served: their queries need fp32
        except EmbeddingError as exc:  # reported by /readyz; searches retry the load
            _preload["error"] = str(exc)
            logger.error("embedding model did not load: %s", exc)
        except DatabaseError as exc:  # which vectors serve is decided on the first search
            logger.warning("embedding preload could not ask the database: %s", exc)
        _preload["state"] = "done"

    if background:
        threading.Thread(target=load, name="embedding-preload", daemon=True).start()
    else:
        load()


def readiness() -> str | None:
    """Why this process cannot serve searches at full speed yet, or None. Processes that
    never asked to preload (commands, tests) load on first use and are always ready."""
    if _preload["state"] is None or is_loaded():
        return None
    if _preload["state"] == "loading":
        return "embedding model loading"
    return f"embedding model unavailable: {_preload['error']}"


def _onnx_agreement(path: str) -> float | None:
    """The mean cosine recorded by the export of ``path``, None without an export."""
    if path not in _agreements:
        from documents.embedding._manifest import find_export

        try:
            _agreements[path] = find_export(path).agreement_mean
        except EmbeddingError:
            return None  # nothing can be embedded until it is prepared: no name to decide
    return _agreements[path]


def active_model_name() -> str:
    """The name recorded on new chunks (and, normally, the one search uses)."""
    name = str(settings.EMBEDDING_MODEL_NAME)
    if settings.EMBEDDING_BACKEND != "onnx":
        return name
    agreement = _onnx_agreement(model_path())
    if agreement is None or agreement >= settings.EMBEDDING_ONNX_MIN_AGREEMENT:
        return name
    return name + ONNX_SUFFIX


def _fp32_vectors_remain(name: str) -> bool:
    """Whether some document still has its chunks under the fp32 ``name`` (reembed has not
    finished). Rechecked every minute; once they are gone they do not come back."""
    known, checked = _old_vectors.get(name, (True, 0.0))
    if known and time.monotonic() - checked > _OLD_VECTORS_RECHECK_SECONDS:
        from documents.models import Document

        known = Document.objects.filter(embedding_model=name).exists()
        _old_vectors[name] = (known, time.monotonic())
    return known


def search_model_name() -> str:
    """The model name whose chunks the semantic leg searches (and embed_query embeds for):
    the active one, except while an onnx export of its own name waits for `reembed` to
    replace the fp32 vectors."""
    active = active_model_name()
    fp32 = str(settings.EMBEDDING_MODEL_NAME)
    if active != fp32 and _fp32_vectors_remain(fp32):
        return fp32
    return active


def embed_texts(texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
    """Unit-length float32 embeddings under active_model_name(), one row per text."""
    return _embed(get_model(), texts, batch_size)


def _embed(model: Backend, texts: list[str], batch_size: int | None) -> np.ndarray:
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    try:
        return model.embed(texts, batch_size or settings.EMBEDDING_BATCH_SIZE)
    except Exception as exc:
        raise EmbeddingError(f"embedding failed: {exc}") from exc


def embed_query(text: str) -> np.ndarray:
    """The query's embedding under search_model_name(), from the in-process LRU when the
    same (normalised) query was embedded before."""
    name = search_model_name()
    key = (name, normalise_query(text))
    cached = query_cache.get(key)
    if cached is not None:
        return cached
    # The fp32 name while its vectors are still served: their queries need the fp32 model.
    kind = "torch" if name != active_model_name() else None
    vector = _embed(get_model(kind), [key[1]], 1)[0]
    query_cache.put(key, vector, max_size=settings.EMBEDDING_QUERY_CACHE_SIZE)
    return vector

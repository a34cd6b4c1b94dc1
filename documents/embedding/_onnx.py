"""EMBEDDING_BACKEND=onnx (the default): the int8 export run by onnxruntime.

Tokenizing (`tokenizers`), mean pooling over the attention mask and normalising are done
here, as sentence-transformers would, so that neither torch nor sentence-transformers is
imported: a web worker stays small and its queries do not share threads with torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from documents.embedding._manifest import PREPARE_HINT, find_export
from documents.embedding._source import EmbeddingError, thread_count
from documents.embedding.spec import PACKAGED_MAX_TOKENS


class OnnxBackend:
    kind = "onnx"

    def __init__(
        self,
        path: str,
        model_file: Path,
        *,
        agreement_mean: float | None,
        max_tokens: int = PACKAGED_MAX_TOKENS,
    ) -> None:
        self.path = path
        # None: a file checked elsewhere (the export's own agreement run).
        self.agreement_mean = agreement_mean
        try:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            # Explicit: onnxruntime's default is every core per session, per process.
            options.intra_op_num_threads = thread_count()
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            # Idle threads sleep instead of spinning: web workers, the task worker and
            # PostgreSQL share the cores, and a spinning pool starves them (and torch).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.session = onnxruntime.InferenceSession(
                str(model_file), options, providers=["CPUExecutionProvider"]
            )
            self.tokenizer = _tokenizer(path, max_tokens)
        except Exception as exc:  # a file that passed the checksum but does not load
            raise EmbeddingError(
                f"cannot load embedding model from {path}: the ONNX export "
                f"{model_file} does not load ({exc}); {PREPARE_HINT}"
            ) from exc
        self.input_names = {node.name for node in self.session.get_inputs()}

    @classmethod
    def for_model(cls, path: str, *, max_tokens: int = PACKAGED_MAX_TOKENS) -> OnnxBackend:
        """The backend over the prepared export of ``path``'s weights (EmbeddingError naming
        `manage.py prepare_models` if it is missing or damaged)."""
        export = find_export(path)
        return cls(
            path, export.model_file, agreement_mean=export.agreement_mean, max_tokens=max_tokens
        )

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        # Batches of similar lengths pad less (sentence-transformers does the same).
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors: np.ndarray | None = None
        for start in range(0, len(texts), batch_size):
            batch = order[start : start + batch_size]
            embedded = self._embed_batch([texts[i] for i in batch])
            if vectors is None:  # the model's own width: any dimension is fine here
                vectors = np.empty((len(texts), embedded.shape[1]), dtype=np.float32)
            vectors[batch] = embedded
        assert vectors is not None, "embed() is never called without texts"
        return vectors

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        (hidden,) = self.session.run(
            ["last_hidden_state"], {k: v for k, v in feeds.items() if k in self.input_names}
        )
        return mean_pool_normalise(hidden, feeds["attention_mask"])


def mean_pool_normalise(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling(mean) + Normalize: the mean of the token vectors the
    mask keeps, scaled to unit length."""
    mask = attention_mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * mask).sum(axis=1)
    pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def _tokenizer(path: str, max_tokens: int) -> Tokenizer:
    """The model's tokenizer as the model reads: truncated to its window (special tokens
    included, like sentence-transformers' max_seq_length) and padded per batch."""
    tokenizer = Tokenizer.from_file(f"{path}/tokenizer.json")
    tokenizer.enable_truncation(max_length=max_tokens)
    pad_id = tokenizer.token_to_id("[PAD]")
    tokenizer.enable_padding(pad_id=pad_id if pad_id is not None else 0, pad_token="[PAD]")
    return tokenizer

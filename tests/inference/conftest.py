"""Fixtures of the inference tests: the session's ONNX export, and a clean slate of the
embedding package's per-process state (loaded backends, names, the query cache)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from documents import embedding
from documents.embedding._manifest import OnnxExport


@pytest.fixture(scope="session")
def onnx_export() -> OnnxExport:
    """The packaged weights' int8 export: made once (tests/conftest.py), found here."""
    from documents.embedding.export import export_prepare

    export, _ = export_prepare()
    return export


def reset_embedding_state() -> None:
    embedding._models.clear()
    embedding._agreements.clear()
    embedding._probed.clear()
    embedding.query_cache.clear()
    embedding._preload.update(state=None, error=None)


@pytest.fixture
def fresh_embedding(settings: Any) -> Iterator[Any]:
    """Settings may change the backend, the export folder or the names: nothing loaded
    under the old ones is reused, and nothing loaded here leaks into later tests."""
    reset_embedding_state()
    yield settings
    reset_embedding_state()

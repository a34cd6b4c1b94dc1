"""`manage.py check` (and runserver, migrate, the worker): an embedding model setting that
cannot work is said at start-up, before a collection or an upload trips over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks

from documents.embedding.spec import BACKENDS


@checks.register()
def embedding_settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backend = str(settings.EMBEDDING_BACKEND)
    if backend not in BACKENDS:
        return [
            checks.Error(
                f"EMBEDDING_BACKEND {backend!r} is not one of: {', '.join(BACKENDS)}",
                id="documents.E001",
            )
        ]
    if backend == "openai" and not settings.EMBEDDING_BASE_URL:
        return [
            checks.Error(
                "EMBEDDING_BACKEND is openai but EMBEDDING_BASE_URL is empty", id="documents.E002"
            )
        ]
    folder = str(settings.EMBEDDING_MODEL_PATH)
    if backend != "openai" and folder and not (Path(folder) / "config.json").is_file():
        # An error: every new collection would record a model that cannot embed.
        return [
            checks.Error(
                f"EMBEDDING_MODEL_PATH {folder!r} is not a model folder (no config.json); "
                "point it at a sentence-transformers folder, or leave it empty for the "
                "packaged model",
                id="documents.E003",
            )
        ]
    return []

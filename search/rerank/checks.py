"""`manage.py check` (and runserver, migrate): a reranker that cannot work is said at
start-up, not only in each search's notices."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from search.rerank import BACKENDS
from search.rerank._base import RerankError
from search.rerank._local import model_folder


@checks.register()
def rerank_settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    backend = settings.RERANK_BACKEND
    if not backend:
        return []
    if backend not in BACKENDS:
        return [
            checks.Error(
                f"RERANK_BACKEND {backend!r} is not one of: {', '.join(BACKENDS)} (or empty)",
                id="search.E001",
            )
        ]
    problem = None
    if backend == "http" and not settings.RERANK_BASE_URL:
        problem = "RERANK_BACKEND is http but RERANK_BASE_URL is empty"
    elif backend == "cross-encoder":
        try:
            model_folder(settings.RERANK_MODEL_PATH)
        except RerankError as exc:
            problem = str(exc)
    if problem is None:
        return []
    # A warning, not an error: the searches still answer (in the fused order, with a notice).
    return [
        checks.Warning(f"{problem}: searches asking to rerank are not reranked", id="search.W001")
    ]

"""Liveness and readiness probes: no authentication, no data in the answer."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from documents.embedding import readiness
from ragsite.unavailable import RETRY_AFTER_SECONDS


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return _unready("database unavailable")
    if pending:
        return _unready("migrations pending")
    model_problem = readiness()
    if model_problem:  # a served process still loading its model (documents/embedding)
        return _unready(model_problem)
    return JsonResponse({"status": "ok"})


def _unready(status: str) -> JsonResponse:
    # Like every 503 of the site (ragsite/unavailable.py): tell the prober when to retry.
    response = JsonResponse({"status": status}, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response

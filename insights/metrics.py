"""Prometheus metrics (prometheus-client; the exposition format is never written by hand).

Counters and histograms are observed where things happen: every request by the
middleware, every search/context/ask by insights.recording, every task by the django-q
signals. Under gunicorn (several processes) they live in PROMETHEUS_MULTIPROC_DIR
(prometheus-client's multiprocess mode; gunicorn.conf.py clears it at start and marks
dead workers) and a scrape adds the processes up. Levels that the database knows
(documents by status, queue depth and age, failed tasks, chunks embedded) are read at
scrape time, so every process and every worker reports the same truth.

`/metrics` answers 404 unless METRICS_TOKEN is set, then only to
`Authorization: Bearer <METRICS_TOKEN>`. A qcluster with METRICS_WORKER_PORT set serves
its own /metrics (same token) on that port (started from insights/apps.py).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUEST_SECONDS = Histogram(
    "ragsite_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL name.",
    ["endpoint", "method"],
    buckets=LATENCY,
)
SEARCH_SECONDS = Histogram(
    "ragsite_search_duration_seconds",
    "Whole search/context/ask time as logged, by endpoint and mode.",
    ["endpoint", "mode"],
    buckets=LATENCY,
)
LEG_SECONDS = Histogram(
    "ragsite_search_leg_duration_seconds",
    "Time of one step of a search: embedding (the query), sql, assembly (context), llm.",
    ["mode", "leg"],
    buckets=LATENCY,
)
RESULTS = Histogram(
    "ragsite_search_results",
    "Results (or context passages) returned per query.",
    ["endpoint"],
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100),
)
ZERO_RESULTS = Counter(
    "ragsite_search_zero_results",
    "Queries that found nothing.",
    ["endpoint", "mode"],
)
LLM_ERRORS = Counter(
    "ragsite_llm_errors",
    "/api/v1/ask/ answered 503 or 504 (model missing, failing or too slow).",
    ["status"],
)
TASKS = Counter(
    "ragsite_worker_tasks",
    "Tasks the django-q workers finished, by function and outcome.",
    ["func", "outcome"],
)
TASK_SECONDS = Histogram(
    "ragsite_worker_task_duration_seconds",
    "Time a django-q task ran.",
    ["func"],
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600),
)

EMBED_BATCH_SECONDS = Histogram(
    "ragsite_embedding_batch_duration_seconds",
    "Time to embed one batch of chunks in the worker (documents/pipeline.py).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
EMBED_BATCH_CHUNKS = Histogram(
    "ragsite_embedding_batch_chunks",
    "Chunks per embedded batch.",
    buckets=(1, 4, 8, 16, 32, 64, 128, 256),
)

LEGS = {"embedding_ms": "embedding", "sql_ms": "sql", "assembly_ms": "assembly", "llm_ms": "llm"}


def search_observe(
    *, endpoint: str, mode: str, timing_ms: dict[str, float], total_ms: float, results: int
) -> None:
    """One computed search (called by insights.recording, also with QUERY_LOG=off)."""
    SEARCH_SECONDS.labels(endpoint, mode).observe(total_ms / 1000)
    for key, leg in LEGS.items():
        value = timing_ms.get(key)
        if value is not None:
            LEG_SECONDS.labels(mode, leg).observe(float(value) / 1000)
    RESULTS.labels(endpoint).observe(results)
    if results == 0:
        ZERO_RESULTS.labels(endpoint, mode).inc()


def embedding_batch_observe(*, seconds: float, chunks: int) -> None:
    """One batch of chunks embedded by the pipeline."""
    EMBED_BATCH_SECONDS.observe(seconds)
    EMBED_BATCH_CHUNKS.observe(chunks)


class RequestMetricsMiddleware:
    """Times every request under its URL name (unnamed URLs share "other", so a scan of
    random paths cannot create series without end)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        endpoint = (match.url_name if match else None) or "other"
        method = request.method if request.method in ("GET", "POST", "HEAD", "DELETE") else "other"
        REQUEST_SECONDS.labels(endpoint, method).observe(time.perf_counter() - started)
        if endpoint == "ask" and response.status_code in (503, 504):
            LLM_ERRORS.labels(str(response.status_code)).inc()
        return response


_CACHE: dict[str, Any] = {"at": None, "families": []}


def metrics_cache_clear() -> None:
    """The next scrape reads the database again."""
    _CACHE.update(at=None, families=[])


class DatabaseCollector(Collector):
    """Levels read from the database at scrape time (counts over indexed columns and the
    last day of the log), kept METRICS_CACHE_SECONDS (30 s) per process: a scrape every
    few seconds, or several Prometheus servers, do not count 100k chunks each time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ttl = float(settings.METRICS_CACHE_SECONDS)
        now = time.monotonic()
        if ttl > 0 and _CACHE["at"] is not None and now - _CACHE["at"] < ttl:
            yield from _CACHE["families"]
            return
        families = list(self._levels())
        _CACHE.update(at=now, families=families)
        yield from families

    def _levels(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count, Min
        from django_q.models import Failure, OrmQ

        from documents.models import Chunk, Document

        documents = GaugeMetricFamily(
            "ragsite_documents", "Documents by processing status.", labels=["status"]
        )
        counts = dict(
            Document.objects.values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        for status in Document.Status.values:
            documents.add_metric([status], counts.get(status, 0))
        yield documents
        # A waiting task's `lock` is when it was queued (or given back); a future one
        # means a worker holds it.
        from django.utils import timezone

        queue = OrmQ.objects.filter(lock__lte=timezone.now()).aggregate(
            n=Count("id"), oldest=Min("lock")
        )
        yield GaugeMetricFamily("ragsite_queue_tasks", "Tasks waiting in the queue.", queue["n"])
        oldest = queue["oldest"]
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest.timestamp())
        yield GaugeMetricFamily(
            "ragsite_queue_oldest_task_age_seconds", "Age of the oldest queued task.", age
        )
        yield GaugeMetricFamily(
            "ragsite_failed_tasks", "Failed tasks kept by django-q.", Failure.objects.count()
        )
        yield GaugeMetricFamily(
            "ragsite_chunks_embedded",
            "Chunks with an embedding (rate() of it: chunks embedded per second).",
            Chunk.objects.filter(embedding__isnull=False).count(),
        )
        yield from self._drift()
        yield from self._evaluation()

    def _drift(self) -> Iterator[GaugeMetricFamily]:
        """insights/drift.py's figures: the share of chunks another model than the
        collection's embedded (re-embed above 0), and over the last 24 h of the log the
        mean similarity of queries to their best match and the share of query terms the
        collection lacks."""
        from documents.models import Collection
        from insights.drift import drift_recent, other_model_shares

        slugs = dict(Collection.objects.values_list("pk", "slug"))
        other = GaugeMetricFamily(
            "ragsite_chunks_other_model_ratio",
            "Share of a collection's embedded chunks embedded by another model than the "
            "collection's own.",
            labels=["collection"],
        )
        for pk, share in other_model_shares().items():
            other.add_metric([slugs.get(pk, str(pk))], share)
        yield other
        similarity = GaugeMetricFamily(
            "ragsite_query_best_similarity",
            "Mean cosine similarity of a query to its best semantic match, last 24 h.",
            labels=["collection"],
        )
        absent = GaugeMetricFamily(
            "ragsite_query_absent_terms_ratio",
            "Share of query terms no chunk of the collection contains, last 24 h.",
            labels=["collection"],
        )
        for pk, day in drift_recent(collection_ids=list(slugs)).items():
            if day.similarity is not None:
                similarity.add_metric([slugs[pk]], day.similarity)
            if day.absent_share is not None:
                absent.add_metric([slugs[pk]], day.absent_share)
        yield similarity
        yield absent

    def _evaluation(self) -> Iterator[GaugeMetricFamily]:
        """Each judgment set's last run: nDCG@10 per mode, and 1 while it is an alert."""
        from insights.selectors import evaluation_latest_runs

        ndcg = GaugeMetricFamily(
            "ragsite_evaluation_ndcg",
            "nDCG@10 of a judgment set's last evaluation run, per mode.",
            labels=["judgment_set", "mode"],
        )
        alert = GaugeMetricFamily(
            "ragsite_evaluation_alert",
            "1 while a judgment set's last run dropped more than EVAL_ALERT_DROP nDCG@10.",
            labels=["judgment_set"],
        )
        for run in evaluation_latest_runs():
            for mode in run.metrics:
                value = run.ndcg(mode)
                if value is not None:
                    ndcg.add_metric([run.judgment_set.name, mode], value)
            alert.add_metric([run.judgment_set.name], 1.0 if run.alert else 0.0)
        yield ndcg
        yield alert


def metrics_registry() -> CollectorRegistry:
    """This process's metrics, or every process's in multiprocess mode, plus the
    database's levels."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)  # nothing counted yet
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):  # the default collectors
            registry.register(collector)
    registry.register(DatabaseCollector())
    return registry


def token_valid(header: str) -> bool:
    expected = settings.METRICS_TOKEN
    scheme, _, token = header.partition(" ")
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(token.strip().encode(), expected.encode())
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus scrape. No loopback exception: a proxy on the same host would expose it."""
    if not settings.METRICS_TOKEN:
        raise Http404("metrics are off (METRICS_TOKEN is not set)")
    if not token_valid(request.headers.get("Authorization", "")):
        response = HttpResponse("a bearer token is required\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)


def task_finished(sender: Any, task: dict[str, Any], **kwargs: Any) -> None:
    """django-q's post_execute: count the task and its time."""
    func = str(task.get("func", "?"))
    TASKS.labels(func, "success" if task.get("success") else "failure").inc()
    started, stopped = task.get("started"), task.get("stopped")
    if started is not None and stopped is not None:
        TASK_SECONDS.labels(func).observe((stopped - started).total_seconds())


class _WorkerMetricsHandler(BaseHTTPRequestHandler):
    """GET /metrics with the bearer token, as the web's view answers it."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        if not settings.METRICS_TOKEN or self.path.split("?")[0] != "/metrics":
            self._answer(404, b"not found\n", "text/plain")
        elif not token_valid(self.headers.get("Authorization", "")):
            self._answer(401, b"a bearer token is required\n", "text/plain")
        else:
            try:
                body = generate_latest(metrics_registry())
            except Exception as exc:  # a scrape must not take the worker's thread down
                logger.exception("worker metrics failed")
                self._answer(500, f"metrics failed: {exc}\n".encode(), "text/plain")
                return
            finally:
                from django.db import connection

                connection.close()  # this thread's connection: not left open between scrapes
            self._answer(200, body, CONTENT_TYPE_LATEST)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every 15 s would flood the worker's log


def worker_metrics_serve(*, port: int) -> ThreadingHTTPServer:
    """Serve the worker's /metrics on `port` (all interfaces) in a daemon thread."""
    server = ThreadingHTTPServer(("0.0.0.0", port), _WorkerMetricsHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server

"""/metrics: off without METRICS_TOKEN, bearer token required (no loopback exception),
search metrics observed per mode and leg, database levels at scrape time, and counters
that add up across two real gunicorn worker processes (multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from tests.helpers.ports import free_port, wait_healthy
from tests.helpers.worker import database_url

TOKEN = "s3cret-metrics-token"


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_metrics_are_off_without_a_token(client: Client, db: None, settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


def test_a_bearer_token_is_required_even_from_loopback(
    client: Client, db: None, settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    ok = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")


def test_searches_are_measured_by_mode_leg_and_results(
    anon_client: APIClient, client: Client, corpus: dict[str, Any], settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = {
        "search": value("ragsite_search_duration_seconds_count", endpoint="search", mode="keyword"),
        "leg": value("ragsite_search_leg_duration_seconds_count", mode="keyword", leg="sql"),
        "zero": value("ragsite_search_zero_results_total", endpoint="search", mode="keyword"),
        "requests": value(
            "ragsite_http_request_duration_seconds_count", endpoint="search", method="POST"
        ),
    }
    anon_client.post("/api/v1/search/", {"query": "volcano", "mode": "keyword"})
    anon_client.post("/api/v1/search/", {"query": "photosynthesis", "mode": "keyword"})
    settings.QUERY_LOG = False  # metrics do not depend on the log
    anon_client.post("/api/v1/search/", {"query": "nothingatall", "mode": "keyword"})
    mode = {"endpoint": "search", "mode": "keyword"}
    assert value("ragsite_search_duration_seconds_count", **mode) == before["search"] + 3
    assert (
        value("ragsite_search_leg_duration_seconds_count", mode="keyword", leg="sql")
        == before["leg"] + 3
    )
    assert value("ragsite_search_zero_results_total", **mode) == before["zero"] + 2
    assert (
        value("ragsite_http_request_duration_seconds_count", endpoint="search", method="POST")
        == before["requests"] + 3
    )
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert sample(text, "ragsite_documents", {"status": "ready"}) == 3
    assert sample(text, "ragsite_documents", {"status": "failed"}) == 0
    assert sample(text, "ragsite_chunks_embedded", {}) == 3
    assert sample(text, "ragsite_queue_tasks", {}) == 0
    assert sample(text, "ragsite_search_results_bucket", {"endpoint": "search", "le": "0.0"})
    ratio = {"collection": "pub"}
    assert sample(text, "ragsite_chunks_other_model_ratio", ratio) == 0
    from documents.models import Chunk

    Chunk.objects.filter(document=corpus["docs"]["ocean.txt"]).update(embedding_model="old")
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    # Levels are kept METRICS_CACHE_SECONDS: a scrape right after reads the same ones.
    assert sample(text, "ragsite_chunks_other_model_ratio", ratio) == 0
    settings.METRICS_CACHE_SECONDS = 0
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert sample(text, "ragsite_chunks_other_model_ratio", ratio) == 0.5  # 1 of 2 chunks
    assert sample(text, "ragsite_chunks_other_model_ratio", {"collection": "priv"}) == 0


@pytest.fixture
def gunicorn_two_workers(transactional_db: None, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    multiproc = tmp_path / "prometheus"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "2",
        "API_THROTTLE_ANON": "",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "ragsite.wsgi:application",
                "-c",
                "gunicorn.conf.py",
            ],
            cwd=django_settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            if not wait_healthy(url, process, timeout=90):
                pytest.fail(log_path.read_text())
            yield url, multiproc
        finally:
            process.terminate()
            process.wait(timeout=30)


def test_counters_add_up_across_gunicorn_workers(
    gunicorn_two_workers: tuple[str, Path],
) -> None:
    url, multiproc = gunicorn_two_workers
    requests = 60

    def get(_: int) -> int:
        with httpx.Client() as fresh:  # a new connection each: spread over the workers
            return fresh.get(f"{url}/api/v1/formats/", timeout=30).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(get, range(requests))) == {200}
    assert httpx.get(f"{url}/metrics", timeout=30).status_code == 401
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    labels = {"endpoint": "api-formats", "method": "GET"}
    assert sample(response.text, "ragsite_http_request_duration_seconds_count", labels) == requests
    # Both processes answered some of them, each into its own file.
    pids = {p.name.rsplit("_", 1)[1] for p in multiproc.glob("histogram_*.db")}
    assert len(pids) == 2, pids


def test_a_worker_serves_its_own_metrics(start_worker: Any, tmp_path: Path) -> None:
    from django_q.tasks import async_task

    from documents.models import Document
    from tests.factories import DocumentFactory
    from tests.helpers.worker import wait_until

    port = free_port()
    worker = start_worker(
        METRICS_WORKER_PORT=str(port),
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "worker-metrics"),
    )
    DocumentFactory.create(status=Document.Status.FAILED)
    async_task("math.floor", 2.5)
    url = f"http://127.0.0.1:{port}/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    labels = {"func": "math.floor", "outcome": "success"}

    def scraped() -> str | None:
        text = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).text
        return text if sample(text, "ragsite_worker_tasks_total", labels) == 1 else None

    text = wait_until(
        scraped, timeout=30, what="the task in the worker's metrics", workers=[worker]
    )
    assert sample(text, "ragsite_documents", {"status": "failed"}) == 1
    assert sample(text, "ragsite_worker_task_duration_seconds_count", {"func": "math.floor"}) == 1


def test_the_grafana_dashboard_uses_metrics_that_exist(
    client: Client, db: None, settings: Any
) -> None:
    import json
    import re

    settings.METRICS_TOKEN = TOKEN
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    declared = {re.sub(r"_total$", "", name) for name in re.findall(r"^# TYPE (\w+) ", text, re.M)}
    dashboard = json.loads(
        (Path(django_settings.BASE_DIR) / "docs/grafana-dashboard.json").read_text()
    )
    used = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"ragsite_\w+", target["expr"])
    }
    assert len(used) >= 10 and used <= declared, used - declared


def test_embedding_batches_are_timed(db: None, ingest: Any) -> None:
    from tests.factories import CollectionFactory

    def count() -> float:
        return REGISTRY.get_sample_value("ragsite_embedding_batch_duration_seconds_count") or 0.0

    chunks = REGISTRY.get_sample_value("ragsite_embedding_batch_chunks_sum") or 0.0
    before = count()
    ingest(
        CollectionFactory.create(), {"a.txt": "Glaciers carve valleys.", "b.txt": "Rivers meander."}
    )
    assert count() == before + 1  # two one-chunk documents, one batch
    assert REGISTRY.get_sample_value("ragsite_embedding_batch_chunks_sum") == chunks + 2

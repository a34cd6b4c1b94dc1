"""Real web processes: searches served without torch in the process, and a warm start
(runserver loads the model as it starts; /readyz is 503 until it has)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from documents.embedding._manifest import OnnxExport
from tests.conftest import ingest_files
from tests.factories import CollectionFactory
from tests.helpers.ports import free_port
from tests.helpers.worker import database_url

BASE_DIR = Path(settings.BASE_DIR)
FILES = {
    "heart.txt": "Aspirin after a heart attack lowers the risk of another one.",
    "ice.txt": "Glaciers melt faster in warm summers and retreat up the valleys.",
}


@pytest.fixture
def corpus(transactional_db: None, onnx_export: OnnxExport) -> None:
    """Committed, so that other processes see it (transactional_db flushes it after)."""
    ingest_files(CollectionFactory.create(slug="pub", is_public=True), FILES)


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ragsite.settings",
        "DATABASE_URL": database_url(),
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "EMBEDDING_BACKEND": "onnx",
        **extra,
    }


SEARCH_IN_A_WEB_PROCESS = """
import json, sys
import django
django.setup()
import ragsite.wsgi  # everything a web server imports
from django.test import Client
response = Client().post(
    "/api/v1/search/", {"query": "aspirin heart attack"}, content_type="application/json"
)
body = response.json()
print(json.dumps({
    "status": response.status_code,
    "first": body["results"][0]["citation"]["source_name"],
    "semantic_rank": body["results"][0]["semantic_rank"],
    "loaded": sorted(m for m in ("torch", "sentence_transformers", "transformers", "onnxruntime")
                     if m in sys.modules),
}))
"""


def test_a_web_process_serves_searches_without_torch(corpus: None) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SEARCH_IN_A_WEB_PROCESS],
        cwd=BASE_DIR,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 200
    assert outcome["first"] == "heart.txt" and outcome["semantic_rank"] == 1
    assert outcome["loaded"] == ["onnxruntime"]  # neither torch nor sentence-transformers


class _Server:
    def __init__(self, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
            + ["--skip-checks"],
            cwd=BASE_DIR,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            payload = json.dumps(body) if body is not None else None
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def readyz_until_ok(self, timeout: float) -> list[tuple[int, str]]:
        """Every /readyz answer, polled as fast as it answers, up to the first 200."""
        answers: list[tuple[int, str]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            try:
                status, body = self.request("GET", "/readyz")
            except OSError:  # not listening yet
                time.sleep(0.02)
                continue
            answers.append((status, body["status"]))
            if status == 200:
                return answers
            time.sleep(0.02)
        pytest.fail(f"/readyz never answered 200: {answers[-3:]}\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[_Server] = []

    def start(**extra_env: str) -> _Server:
        log = tmp_path / f"runserver-{len(servers)}.log"
        server = _Server(free_port(), _env(EMBEDDING_PRELOAD="1", **extra_env), log)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.mark.timeout(180)
def test_runserver_loads_the_model_before_it_reports_ready_and_the_first_search_is_fast(
    corpus: None, start_server: Any
) -> None:
    server = start_server()
    answers = server.readyz_until_ok(timeout=120)
    # Not ready while loading (however short that is here), ready once loaded, nothing else.
    assert all(answer == (503, "embedding model loading") for answer in answers[:-1]), answers
    assert answers[-1] == (200, "ok")

    embedding_ms = []
    queries = ["aspirin heart", "glacier melt", "heart attack risk", "warm summers"] * 3
    for number, query in enumerate(queries):  # all different: no answer from the cache
        status, body = server.request("POST", "/api/v1/search/", {"query": f"{query} {number}"})
        assert status == 200, body
        embedding_ms.append(body["timing"]["embedding_ms"])
    # A first search that loaded the model would take a second or more (importing
    # onnxruntime, checking and loading the export): here it is one more query.
    typical = statistics.median(embedding_ms[1:])
    assert embedding_ms[0] < max(5 * typical, typical + 150), embedding_ms


@pytest.mark.timeout(120)
def test_readyz_says_why_when_the_model_cannot_load(
    corpus: None, start_server: Any, tmp_path: Path
) -> None:
    server = start_server(EMBEDDING_ONNX_DIR=str(tmp_path / "no-export"))
    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = server.request("GET", "/readyz")
        except OSError:
            status, body = 0, {"status": ""}
        if "unavailable" in body["status"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 503, body
    assert "no ONNX export" in body["status"] and "manage.py prepare_models" in body["status"]
    # The keyword leg still answers while the model is missing.
    status, body = server.request(
        "POST", "/api/v1/search/", {"query": "aspirin", "mode": "keyword"}
    )
    assert status == 200 and body["results"][0]["citation"]["source_name"] == "heart.txt"

"""POST /api/v1/ask/ against a real OpenAI-compatible server on loopback
(tests/helpers/llm_server.py): whole and streamed answers, citations, timeouts and failures, access,
the schema (schemathesis), and gunicorn serving other requests while a stream runs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from schemathesis.config import SchemathesisConfig

from documents.models import Document
from search.rag import NO_CONTEXT_ANSWER
from search.rag.answer import SYSTEM_PROMPT
from tests.factories import CollectionFactory, UserFactory
from tests.helpers.llm_server import FakeLLM
from tests.helpers.ports import free_port, wait_healthy
from tests.helpers.worker import database_url

URL = "/api/v1/ask/"
VOLCANO = (
    "Volcanoes form where magma rises through cracks in the crust. Pyroclastic flows are "
    "avalanches of hot gas and rock, the deadliest hazard of an explosive eruption."
)
LAHARS = "Lahars are mudflows of volcanic ash and water that travel far along river valleys."
SECRET = "The private lab keeps its volcano sensor calibration codes here."


@pytest.fixture
def llm(settings: Any) -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_MODEL = "test-model"
        settings.LLM_API_KEY = "sk-test"
        settings.LLM_TIMEOUT = 5
        yield server


@pytest.fixture
def library(db: None, ingest: Any) -> dict[str, Any]:
    owner = UserFactory.create()
    public = CollectionFactory.create(slug="geo", is_public=True)
    ingest(public, {"volcanoes.txt": VOLCANO, "lahars.txt": LAHARS})
    ingest(CollectionFactory.create(slug="lab", owner=owner), {"lab.txt": SECRET})
    return {"owner": owner}


def ask(client: APIClient, **payload: Any) -> Any:
    return client.post(URL, {"query": "volcano hazards", **payload}, format="json")


def sse(response: Any) -> list[tuple[str, Any]]:
    """The events of a streamed answer, in order."""
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("\n\n")
    events = []
    for block in body.strip().split("\n\n"):
        name = re.fullmatch(r"event: (\w+)\ndata: (.*)", block, re.S)
        assert name, block
        events.append((name.group(1), json.loads(name.group(2))))
    return events


def test_ask_answers_from_the_context_citing_passages(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM
) -> None:
    response = ask(anon_client)
    assert response.status_code == 200, response.content
    body = response.json()
    numbers = [c["number"] for c in body["retrieval"]["citations"]]
    assert len(numbers) == 2
    # The fake model cites back every [n] heading the prompt: they round-trip to passages.
    assert body["answer"] == "The passages say so [1][2]."
    assert [c["number"] for c in body["citations"]] == [1, 2]
    assert {c["source_name"] for c in body["citations"]} == {"volcanoes.txt", "lahars.txt"}
    assert body["citations"][0] == body["retrieval"]["citations"][0]
    assert body["model"] == "test-model" and body["finish_reason"] == "stop"
    assert set(body["timing"]) == {"retrieval_ms", "llm_ms", "total_ms"}

    (request,) = llm.requests
    sent = request["body"]
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["model"] == "test-model" and sent["stream"] is False and sent["max_tokens"] == 1024
    system, user = sent["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert "only" in SYSTEM_PROMPT and "[1]" in SYSTEM_PROMPT
    assert user["content"] == (
        f"Context:\n\n{body['retrieval']['context']}\n\nQuestion: volcano hazards"
    )


def test_ask_streams_retrieval_then_tokens_then_citations_then_done(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM
) -> None:
    response = anon_client.post(
        URL,
        {"query": "volcano hazards", "stream": True},
        format="json",
        HTTP_ACCEPT="text/event-stream",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response["Cache-Control"] == "no-cache" and response["X-Accel-Buffering"] == "no"
    events = sse(response)
    names = [name for name, _ in events]
    assert names[0] == "retrieval" and names[-2:] == ["citations", "done"]
    assert set(names[1:-2]) == {"token"} and len(names) > 5  # the answer came in pieces
    retrieval = events[0][1]
    assert [c["number"] for c in retrieval["citations"]] == [1, 2]
    answer = "".join(data["text"] for name, data in events if name == "token")
    assert answer == "The passages say so [1][2]."
    assert events[-2][1]["citations"] == retrieval["citations"]
    done = events[-1][1]
    assert done["model"] == "test-model" and done["finish_reason"] == "stop"
    assert done["timing"]["first_token_ms"] <= done["timing"]["total_ms"]
    assert llm.requests[0]["body"]["stream"] is True


def test_citations_name_only_passages_the_model_cites(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM
) -> None:
    body = ask(anon_client, top_k=1).json()
    assert len(body["retrieval"]["citations"]) == 1
    assert body["answer"] == "The passages say so [1]."
    assert [c["number"] for c in body["citations"]] == [1]


def test_without_a_model_ask_answers_503_and_context_still_works(
    anon_client: APIClient, library: dict[str, Any], settings: Any
) -> None:
    settings.LLM_BASE_URL = ""
    for stream in (False, True):
        response = ask(anon_client, stream=stream)
        assert response.status_code == 503
        assert response["Content-Type"] == "application/json"
        assert response.json() == {
            "detail": "no language model configured (set LLM_BASE_URL and LLM_MODEL)"
        }
    context = anon_client.post("/api/v1/context/", {"query": "volcano"}, format="json")
    assert context.status_code == 200 and context.json()["citations"]


def test_a_model_slower_than_the_timeout_answers_504(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM, settings: Any
) -> None:
    settings.LLM_TIMEOUT = 0.3
    llm.delay = 3
    for stream in (False, True):
        started = time.monotonic()
        response = ask(anon_client, stream=stream)
        assert response.status_code == 504, response.content
        assert response.json()["detail"] == "the language model did not answer within 0.3 s"
        assert time.monotonic() - started < 2.5


def test_a_failing_or_unreachable_model_answers_503(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM, settings: Any
) -> None:
    llm.status = 500
    for stream in (False, True):
        response = ask(anon_client, stream=stream)
        assert response.status_code == 503
        assert response.json()["detail"] == ("the language model answered 500: the model crashed")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.LLM_BASE_URL = f"http://127.0.0.1:{closed}/v1"
    response = ask(anon_client)
    assert response.status_code == 503
    assert response.json()["detail"].startswith("the language model cannot be reached (")


def test_a_model_failing_mid_stream_sends_an_error_event_then_done(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM, settings: Any
) -> None:
    settings.LLM_TIMEOUT = 0.5
    llm.stall_after = 2
    response = ask(anon_client, stream=True)
    assert response.status_code == 200
    events = sse(response)
    assert [name for name, _ in events] == ["retrieval", "token", "token", "error", "done"]
    assert events[3][1] == {
        "detail": "the language model did not answer within 0.5 s",
        "status": 504,
    }


def test_no_matching_passage_answers_without_asking_the_model(
    anon_client: APIClient, library: dict[str, Any], llm: FakeLLM
) -> None:
    CollectionFactory.create(slug="empty", is_public=True)
    body = ask(anon_client, filters={"collections": ["empty"]}).json()
    assert body["answer"] == NO_CONTEXT_ANSWER and body["citations"] == []
    streamed = sse(ask(anon_client, filters={"collections": ["empty"]}, stream=True))
    assert [name for name, _ in streamed] == ["retrieval", "token", "citations", "done"]
    assert llm.requests == []


def prompt_for(client: APIClient, llm: FakeLLM) -> str:
    llm.requests.clear()
    response = ask(client, query="volcano sensor calibration codes")
    assert response.status_code == 200, response.content
    prompt = llm.requests[0]["body"]["messages"][1]["content"]
    return prompt.split("\n\nQuestion: ")[0]  # the context part


def test_the_model_never_sees_a_private_collection_of_someone_else(
    library: dict[str, Any], llm: FakeLLM
) -> None:
    anonymous = APIClient()
    other = APIClient()
    other.force_authenticate(UserFactory.create())  # signed in, no grant on "lab"
    owner = APIClient()
    owner.force_authenticate(library["owner"])
    assert "calibration codes" not in prompt_for(anonymous, llm)
    assert "calibration codes" not in prompt_for(other, llm)
    assert "calibration codes" in prompt_for(owner, llm)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "x", "stream": "maybe"}, "stream"),
        ({"query": "x", "max_tokens": 10**6}, "max_tokens"),
        ({"query": "x", "top_k": 0}, "top_k"),
    ],
)
def test_bad_ask_requests_answer_400_before_any_model_call(
    anon_client: APIClient, db: None, llm: FakeLLM, payload: dict[str, Any], field: str
) -> None:
    response = anon_client.post(URL, payload, format="json", HTTP_ACCEPT="text/event-stream")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith(field)
    assert llm.requests == []


def test_schema_documents_the_rag_endpoints(anon_client: APIClient, db: None) -> None:
    schema = anon_client.get("/api/v1/schema/?format=json").json()
    ask_responses = schema["paths"]["/api/v1/ask/"]["post"]["responses"]
    assert {"200", "400", "503", "504"} <= set(ask_responses)
    assert set(ask_responses["200"]["content"]) == {"application/json", "text/event-stream"}
    context_responses = schema["paths"]["/api/v1/context/"]["post"]["responses"]
    assert {"200", "400"} <= set(context_responses)


# --- The schema, fuzzed (schemathesis), with and without a model ----------------------


FUZZ_CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # No model configured, or a model failing: answers documented in the schema.
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "504"]},
            # Some schema-valid requests are rightly refused with a documented 400: a query
            # of only `-excluded` words, NUL characters, unknown filter keys.
            "positive_data_acceptance": {"enabled": False},
        }
    }
)


@pytest.fixture(params=["model", "no-model"])
def rag_api(
    request: pytest.FixtureRequest, transactional_db: None, ingest: Any, settings: Any
) -> Iterator[Any]:
    from ragsite.wsgi import application

    ingest(CollectionFactory.create(is_public=True), {"volcanoes.txt": VOLCANO})
    with FakeLLM() as server:
        settings.LLM_BASE_URL = server.base_url if request.param == "model" else ""
        settings.LLM_MODEL = "test-model"
        yield schemathesis.openapi.from_wsgi(
            "/api/v1/schema/?format=json", application, config=FUZZ_CONFIG
        )


def test_rag_endpoints_answer_as_their_schema_says(rag_api: Any) -> None:
    """Every generated request (valid or not) gets a documented status and body: 200, 400,
    and without a model 503; never a 500 (schemathesis' pytest plugin does not run on
    pytest 9, so its strategies are driven by hypothesis here)."""
    for path in ("/api/v1/context/", "/api/v1/ask/"):

        @given(case=rag_api[path]["POST"].as_strategy())
        @hypothesis_settings(
            max_examples=15,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        def check(case: Any) -> None:
            case.call_and_validate()

        check()


# --- Production server: a stream holds a thread, not the process -----------------------


@pytest.fixture
def gunicorn(transactional_db: None, tmp_path: Path, llm: FakeLLM) -> Iterator[str]:
    """gunicorn with the production config (gunicorn.conf.py), one process, on the test
    database, asking the fake model with a 5 s timeout."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "4",
        "LLM_BASE_URL": llm.base_url,
        "LLM_MODEL": "test-model",
        "LLM_TIMEOUT": "5",
        "API_THROTTLE_ANON": "",
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "ragsite.wsgi:application", "-c", "gunicorn.conf.py"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(url, process, timeout=90):
            pytest.fail((tmp_path / "gunicorn.log").read_text())
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_gunicorn_serves_other_requests_while_a_stream_runs(
    ingest: Any, llm: FakeLLM, gunicorn: str
) -> None:
    ingest(CollectionFactory.create(is_public=True), {"volcanoes.txt": VOLCANO})
    assert Document.objects.filter(status="ready").count() == 1
    llm.stall_after = 2  # the model writes two pieces, then goes quiet
    payload = {"query": "volcano hazards", "stream": True}
    with httpx.stream("POST", f"{gunicorn}/api/v1/ask/", json=payload, timeout=30) as stream:
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        lines = stream.iter_lines()
        assert next(lines) == "event: retrieval"  # the first event arrives at once
        # While that stream waits for the model (5 s, then it gives up), the same process
        # answers others: a blocked server would answer them only after the stream ended.
        started = time.monotonic()
        search = httpx.post(f"{gunicorn}/api/v1/search/", json={"query": "lava"}, timeout=10)
        assert search.status_code == 200
        assert httpx.get(f"{gunicorn}/healthz", timeout=10).status_code == 200
        assert time.monotonic() - started < 4
        rest = "\n".join(lines)
    assert "event: error\ndata: " in rest and '"status":504' in rest
    assert rest.rstrip().split("\n")[-2] == "event: done"

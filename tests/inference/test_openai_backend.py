"""EMBEDDING_BACKEND=openai against a real OpenAI-compatible server on loopback: batching,
auth, retries and giving up, error messages, and checking what the server answers."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from documents.embedding._openai import PROBE_TEXT, OpenAIBackend
from documents.embedding._source import EmbeddingError
from tests.helpers.embedding_server import FakeEmbeddingServer, closed_url, embedding_for

TEXTS = [
    "Aspirin lowers the risk of a second heart attack.",
    "Glaciers retreat as average temperatures rise.",
    "A second aspirin trial found the same.",
]


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer() as running:
        yield running


def make_backend(base_url: str, **overrides: Any) -> OpenAIBackend:
    options: dict[str, Any] = {
        "base_url": base_url,
        "api_key": "",
        "model": "bge-small",
        "dimensions": None,
        "timeout_seconds": 5.0,
        "max_batch": 64,
        "max_batch_tokens": None,
        "retries": 3,
        "backoff_seconds": 0.01,  # fast tests; the back-off's growth is checked below
        **overrides,
    }
    return OpenAIBackend(**options)


def unit(vector: list[float]) -> np.ndarray:
    array = np.array(vector, dtype=np.float32)
    return array / np.linalg.norm(array)


def test_vectors_are_the_servers_in_input_order_at_unit_length(server: FakeEmbeddingServer) -> None:
    vectors = make_backend(server.base_url + "/").embed(TEXTS, 64)  # a trailing slash is fine

    assert vectors.dtype == np.float32 and vectors.shape == (3, 64)
    for text, vector in zip(TEXTS, vectors, strict=True):
        np.testing.assert_allclose(vector, unit(embedding_for(text)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    # Texts sharing words are closer than texts that share none.
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1]
    (request,) = server.requests
    assert request["body"] == {"model": "bge-small", "input": TEXTS}  # no "dimensions"


def test_answers_out_of_index_order_are_put_back_in_order(server: FakeEmbeddingServer) -> None:
    server.mangle = lambda data: list(reversed(data))

    vectors = make_backend(server.base_url).embed(TEXTS, 64)

    np.testing.assert_allclose(vectors[0], unit(embedding_for(TEXTS[0])), atol=1e-6)


def test_batches_by_count(server: FakeEmbeddingServer) -> None:
    server.max_inputs = 3  # like TEI's --max-client-batch-size: more answers 413
    texts = [f"text number {i}" for i in range(7)]

    vectors = make_backend(server.base_url, max_batch=3).embed(texts, 64)

    assert server.inputs == [texts[0:3], texts[3:6], texts[6:7]]
    np.testing.assert_allclose(vectors[6], unit(embedding_for(texts[6])), atol=1e-6)
    # The caller's batch size caps too.
    server.requests.clear()
    make_backend(server.base_url, max_batch=3).embed(texts, 2)
    assert [len(batch) for batch in server.inputs] == [2, 2, 2, 1]


def test_batches_by_approximate_token_budget(server: FakeEmbeddingServer) -> None:
    short = "x" * 16  # 4 approximate tokens
    long = "y" * 100  # 25: over the budget alone, so it goes alone
    texts = [short, short, short, long, short]

    make_backend(server.base_url, max_batch_tokens=10).embed(texts, 64)

    assert server.inputs == [[short, short], [short], [long], [short]]


def test_api_key_is_sent_as_bearer_token(server: FakeEmbeddingServer) -> None:
    server.api_key = "sk-test"

    make_backend(server.base_url, api_key="sk-test").embed(TEXTS[:1], 64)

    assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-test"


def test_no_key_sends_no_authorization_header(server: FakeEmbeddingServer) -> None:
    make_backend(server.base_url).embed(TEXTS[:1], 64)

    assert "Authorization" not in server.requests[-1]["headers"]


def test_a_4xx_fails_at_once_with_the_servers_message(server: FakeEmbeddingServer) -> None:
    server.api_key = "sk-right"

    with pytest.raises(EmbeddingError) as error:
        make_backend(server.base_url, api_key="sk-wrong").embed(TEXTS, 64)

    assert str(error.value) == (
        f"embedding server {server.base_url} answered 401 for model 'bge-small': "
        "Incorrect API key provided"
    )
    assert len(server.requests) == 1  # not retried: the next attempt would fail the same


def test_a_batch_the_server_refuses_is_sent_again_in_halves(server: FakeEmbeddingServer) -> None:
    server.max_inputs = 2  # TEI answers 413 past its --max-client-batch-size

    vectors = make_backend(server.base_url).embed(TEXTS, 64)

    assert server.inputs == [TEXTS, TEXTS[:1], TEXTS[1:]]
    np.testing.assert_allclose(vectors[2], unit(embedding_for(TEXTS[2])), atol=1e-6)


def test_one_input_the_server_refuses_names_the_servers_reason(server: FakeEmbeddingServer) -> None:
    server.max_inputs = 0

    with pytest.raises(EmbeddingError, match=r"answered 413 .*batch size 1 > maximum allowed"):
        make_backend(server.base_url).embed(TEXTS[:1], 64)
    assert len(server.requests) == 1


def test_5xx_is_retried_then_succeeds(server: FakeEmbeddingServer) -> None:
    server.fail_next(2, status=503)

    vectors = make_backend(server.base_url, retries=3).embed(TEXTS, 64)

    assert len(server.requests) == 3
    assert vectors.shape == (3, 64)


def test_gives_up_after_the_retries_with_the_servers_message(server: FakeEmbeddingServer) -> None:
    server.fail_next(10, status=500)

    with pytest.raises(EmbeddingError) as error:
        make_backend(server.base_url, retries=2).embed(TEXTS, 64)

    assert str(error.value) == (
        f"embedding server {server.base_url} answered 500 after 3 attempts for model "
        "'bge-small': injected fault 500"
    )
    assert len(server.requests) == 3


def test_429_waits_as_long_as_retry_after_says(server: FakeEmbeddingServer) -> None:
    server.rate_limit_next(1, retry_after="1")
    started = time.monotonic()

    make_backend(server.base_url, backoff_seconds=0.01).embed(TEXTS, 64)

    assert time.monotonic() - started >= 0.95  # not the 0.01 s back-off
    assert len(server.requests) == 2


def test_unreachable_server_gives_up_with_a_clear_message() -> None:
    url = closed_url()
    backend = make_backend(url, retries=2, backoff_seconds=0.05)
    started = time.monotonic()

    with pytest.raises(EmbeddingError) as error:
        backend.embed(TEXTS, 64)

    message = str(error.value)
    assert message.startswith(f"embedding server {url} unreachable after 3 attempts: ")
    assert "Connection refused" in message
    # Backed off between attempts: 0.025-0.05 s, then 0.05-0.1 s.
    assert time.monotonic() - started >= 0.075


def test_a_server_back_up_is_used_again(server: FakeEmbeddingServer) -> None:
    backend = make_backend(server.base_url, retries=0)
    backend.embed(TEXTS[:1], 64)  # a kept-alive connection now exists
    server.go_down()

    with pytest.raises(EmbeddingError, match="unreachable after 1 attempt: "):
        backend.embed(TEXTS[:1], 64)
    server.come_up()
    assert backend.embed(TEXTS[:1], 64).shape == (1, 64)


def test_a_slow_server_times_out_with_a_clear_message(server: FakeEmbeddingServer) -> None:
    server.delay = 2.0
    started = time.monotonic()

    with pytest.raises(EmbeddingError) as error:
        make_backend(server.base_url, timeout_seconds=0.2, retries=1).embed(TEXTS, 64)

    assert str(error.value) == (
        f"embedding server {server.base_url} did not answer within 0.2 s (2 attempts)"
    )
    assert len(server.requests) == 2
    assert time.monotonic() - started < 1.5


def test_limited_copy_gives_up_sooner_on_the_same_server(server: FakeEmbeddingServer) -> None:
    backend = make_backend(server.base_url, timeout_seconds=5.0, retries=3)
    server.delay = 2.0
    started = time.monotonic()

    with pytest.raises(EmbeddingError, match=r"within 0.2 s \(1 attempt\)"):
        backend.limited(timeout_seconds=0.2, retries=0).embed(TEXTS[:1], 64)

    assert time.monotonic() - started < 1.0
    assert backend.retries == 3 and backend.timeout_seconds == 5.0  # the original is unchanged


def test_one_embedding_fewer_than_inputs_is_an_error(server: FakeEmbeddingServer) -> None:
    server.wrong_count = True

    with pytest.raises(EmbeddingError, match=r"answered 2 embeddings .* for 3 inputs"):
        make_backend(server.base_url).embed(TEXTS, 64)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda data: [{**data[0], "embedding": data[0]["embedding"][:10]}, *data[1:]],
            "different lengths",
        ),
        (lambda data: [{**data[0], "embedding": [math.nan] * 64}, *data[1:]], "NaN or infinite"),
        (lambda data: [{**data[0], "embedding": [0.0] * 64}, *data[1:]], "all-zero"),
        (
            lambda data: [{**data[0], "embedding": ["a"] * 64}, *data[1:]],
            "not an embeddings response",
        ),
        (lambda data: [{**item, "index": 0} for item in data], r"indexes \[0\]"),
    ],
    ids=["mixed-lengths", "nan", "zero", "strings", "duplicate-index"],
)
def test_malformed_answers_are_errors(
    server: FakeEmbeddingServer, mangle: Any, message: str
) -> None:
    server.mangle = mangle

    with pytest.raises(EmbeddingError, match=message):
        make_backend(server.base_url).embed(TEXTS, 64)


def test_a_model_that_changes_dimension_between_batches_is_an_error(
    server: FakeEmbeddingServer,
) -> None:
    backend = make_backend(server.base_url)
    backend.embed(TEXTS[:1], 64)
    server.dimensions = 32  # the server now runs another model under the same name

    with pytest.raises(EmbeddingError, match="embeddings of 32 dimensions, expected 64"):
        backend.embed(TEXTS[:1], 64)


def test_dimensions_are_requested_only_when_set(server: FakeEmbeddingServer) -> None:
    backend = make_backend(server.base_url, dimensions=32)

    vectors = backend.embed(TEXTS, 64)

    assert vectors.shape == (3, 32)
    assert server.requests[-1]["body"]["dimensions"] == 32


def test_dimensions_probe_asks_the_server_once(server: FakeEmbeddingServer) -> None:
    backend = make_backend(server.base_url)

    assert backend.dimensions() == 64
    assert backend.dimensions() == 64
    assert server.inputs == [[PROBE_TEXT]]


def test_no_texts_need_no_request(server: FakeEmbeddingServer) -> None:
    assert make_backend(server.base_url, dimensions=32).embed([], 64).shape == (0, 32)
    assert server.requests == []


def test_from_settings(server: FakeEmbeddingServer, settings: Any) -> None:
    settings.EMBEDDING_BASE_URL = server.base_url
    settings.EMBEDDING_API_KEY = "sk-settings"
    settings.EMBEDDING_MODEL_NAME = "nomic-embed-text"
    settings.EMBEDDING_MAX_BATCH = 2

    backend = OpenAIBackend.from_settings()
    backend.embed(TEXTS, 64)

    assert (backend.kind, backend.path) == ("openai", server.base_url)
    assert [len(batch) for batch in server.inputs] == [2, 1]
    assert server.requests[0]["body"]["model"] == "nomic-embed-text"
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-settings"


def test_no_base_url_is_a_clear_error(settings: Any) -> None:
    settings.EMBEDDING_BASE_URL = ""

    with pytest.raises(EmbeddingError, match="EMBEDDING_BASE_URL is empty"):
        OpenAIBackend.from_settings()

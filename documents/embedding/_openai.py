"""EMBEDDING_BACKEND=openai: any OpenAI-compatible ``/v1/embeddings`` server (OpenAI, Text
Embeddings Inference, Ollama, vLLM, llama.cpp's server), with httpx.

Texts go in batches capped by count and by an approximate token budget: characters / 4,
the usual rule of thumb for English with BPE/WordPiece vocabularies (it undercounts
scripts such as Chinese, whose characters are often a token each, so keep a margin in
EMBEDDING_MAX_BATCH_TOKENS for them). The server's own tokenizer is not available here.

Connection failures, timeouts, 429 and 5xx are retried with exponential back-off and
jitter (honouring Retry-After up to RETRY_AFTER_CAP_SECONDS); any other 4xx is the
request's fault and fails at once with the server's message. Every failure is an
EmbeddingError, the error the ingestion pipeline marks documents `failed` with and retries.
Answers are checked (one finite vector per input, in `index` order, all of one length)
and normalised to unit length, since not every server normalises.
"""

from __future__ import annotations

import base64
import copy as _copy
import email.utils
import logging
import math
import os
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
from django.conf import settings

from documents.embedding._source import EmbeddingError

logger = logging.getLogger(__name__)

# A server asking for a longer pause than this is waited on for this long only: a
# document's ingestion should fail (and be retried later by the sweep) rather than hang.
RETRY_AFTER_CAP_SECONDS = 30.0
PROBE_TEXT = "dimension probe"
# Statuses worth another attempt: rate limits, and the server (or a proxy in front of
# it) being briefly unable to answer.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class _TooLarge(EmbeddingError):
    """413: more (or longer) inputs than the server takes in one request."""


def approx_tokens(text: str) -> int:
    """Characters / 4, rounded up, at least 1 (an empty input still costs a slot)."""
    return max(1, -(-len(text) // 4))


class OpenAIBackend:
    kind = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        dimensions: int | None,
        timeout_seconds: float,
        max_batch: int,
        max_batch_tokens: int | None,
        retries: int,
        backoff_seconds: float,
    ) -> None:
        if not base_url:
            raise EmbeddingError("EMBEDDING_BASE_URL is empty: the openai backend needs a server")
        if max_batch < 1:
            raise EmbeddingError(f"EMBEDDING_MAX_BATCH must be at least 1, not {max_batch}")
        self.base_url = base_url.rstrip("/")
        self.path = self.base_url
        self.url = f"{self.base_url}/embeddings"
        self.model = model
        # What the request asks for (models such as text-embedding-3 can shorten their
        # vectors); None leaves it to the model.
        self.requested_dimensions = dimensions
        self.timeout_seconds = timeout_seconds
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens or None
        self.retries = max(0, retries)
        self.backoff_seconds = backoff_seconds
        self._dimensions: int | None = None  # learnt from the first answer
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.Client | None = None
        self._client_pid = 0

    @classmethod
    def from_settings(
        cls, *, model: str | None = None, dimensions: int | None = None
    ) -> OpenAIBackend:
        """The backend the EMBEDDING_* settings describe; ``model`` defaults to
        EMBEDDING_MODEL_NAME (the name the server knows the model by)."""
        return cls(
            base_url=settings.EMBEDDING_BASE_URL,
            api_key=settings.EMBEDDING_API_KEY,
            model=model or settings.EMBEDDING_MODEL_NAME,
            dimensions=dimensions,
            timeout_seconds=settings.EMBEDDING_TIMEOUT_SECONDS,
            max_batch=settings.EMBEDDING_MAX_BATCH,
            max_batch_tokens=settings.EMBEDDING_MAX_BATCH_TOKENS,
            retries=settings.EMBEDDING_RETRIES,
            backoff_seconds=settings.EMBEDDING_RETRY_BACKOFF_SECONDS,
        )

    def limited(self, *, timeout_seconds: float, retries: int) -> OpenAIBackend:
        """This backend with a shorter timeout and fewer retries (sharing its connections),
        e.g. for a search's query, which should fall back to keyword search rather than
        wait as long as a document's ingestion may."""
        self._http()  # made before copying, so that both use the one pool
        copy = _copy.copy(self)
        copy.timeout_seconds = timeout_seconds
        copy.retries = max(0, retries)
        return copy

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        """The connection pool, one per process: a pool inherited over fork() would share
        its sockets with the parent (gunicorn's workers, the task worker's children)."""
        if self._client is None or self._client_pid != os.getpid():
            self._client = httpx.Client(headers=self._headers)
            self._client_pid = os.getpid()
        return self._client

    def _timeout(self) -> httpx.Timeout:
        # Connecting to a live server takes milliseconds: a long connect timeout only
        # delays the retry of a server that is down.
        return httpx.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, 10.0))

    def dimensions(self) -> int:
        """The length of the model's vectors, asked of the server once (by embedding
        PROBE_TEXT) when no answer has told it yet: for a collection created on a server
        model whose dimension nobody wrote down."""
        if self._dimensions is None:
            self.embed([PROBE_TEXT], 1)
        assert self._dimensions is not None
        return self._dimensions

    def embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        if not texts:
            return np.empty((0, self.requested_dimensions or self._dimensions or 0), np.float32)
        rows = [self._embed_batch(batch) for batch in self.batches(texts, batch_size)]
        return np.vstack(rows)

    def batches(self, texts: list[str], batch_size: int) -> Iterator[list[str]]:
        """Consecutive runs of ``texts`` of at most min(batch_size, max_batch) inputs and
        max_batch_tokens approximate tokens (a longer text goes alone: the server
        truncates it or says why not)."""
        limit = max(1, min(batch_size, self.max_batch))
        batch: list[str] = []
        tokens = 0
        for text in texts:
            cost = approx_tokens(text)
            over_budget = (
                self.max_batch_tokens is not None and tokens + cost > self.max_batch_tokens
            )
            if batch and (len(batch) >= limit or over_budget):
                yield batch
                batch, tokens = [], 0
            batch.append(text)
            tokens += cost
        if batch:
            yield batch

    def _payload(self, texts: list[str]) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "input": texts}
        if self.requested_dimensions is not None:
            payload["dimensions"] = self.requested_dimensions
        return payload

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        try:
            response = self._post_with_retries(self._payload(texts))
        except _TooLarge:
            if len(texts) == 1:
                raise
            # TEI answers 413 past its --max-client-batch-size (32 by default): halves
            # still get the texts embedded, one extra request per batch.
            logger.warning(
                "embedding server %s refused %d inputs at once: lower EMBEDDING_MAX_BATCH",
                self.url,
                len(texts),
            )
            middle = len(texts) // 2
            return np.vstack([self._embed_batch(texts[:middle]), self._embed_batch(texts[middle:])])
        vectors = self._parse(response, len(texts))
        if self._dimensions is None:
            self._dimensions = vectors.shape[1]
        return vectors

    def _post_with_retries(self, payload: dict[str, Any]) -> httpx.Response:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http().post(self.url, json=payload, timeout=self._timeout())
            except httpx.HTTPError as exc:
                if attempt == attempts:
                    raise self._transport_error(exc, attempts) from exc
                logger.warning("embedding server %s: %r (attempt %d)", self.url, exc, attempt)
                time.sleep(self._backoff(attempt))
                continue
            if response.status_code < 400:
                return response
            if response.status_code not in _RETRY_STATUSES:
                raise self._status_error(response)
            if attempt == attempts:
                raise self._status_error(response, attempts=attempts)
            logger.warning(
                "embedding server %s answered %d (attempt %d)",
                self.url,
                response.status_code,
                attempt,
            )
            time.sleep(self._retry_delay(response, attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _backoff(self, attempt: int) -> float:
        """Exponential, with "equal jitter": between half and all of base * 2^(n-1), so
        that workers failing together do not retry together (capped like Retry-After)."""
        step = min(self.backoff_seconds * 2 ** (attempt - 1), RETRY_AFTER_CAP_SECONDS)
        return step / 2 + random.uniform(0, step / 2)

    def _retry_delay(self, response: httpx.Response, attempt: int) -> float:
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        if retry_after is None:
            return self._backoff(attempt)
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_SECONDS)

    def _transport_error(self, exc: httpx.HTTPError, attempts: int) -> EmbeddingError:
        if isinstance(exc, httpx.TimeoutException):
            return EmbeddingError(
                f"embedding server {self.base_url} did not answer within "
                f"{self.timeout_seconds:g} s ({_attempts(attempts)})"
            )
        reason = _reason(exc)
        return EmbeddingError(
            f"embedding server {self.base_url} unreachable after {_attempts(attempts)}: {reason}"
        )

    def _status_error(self, response: httpx.Response, *, attempts: int = 1) -> EmbeddingError:
        after = f" after {attempts} attempts" if attempts > 1 else ""
        error = _TooLarge if response.status_code == 413 else EmbeddingError
        return error(
            f"embedding server {self.base_url} answered {response.status_code}{after} "
            f"for model {self.model!r}: {_server_message(response)}"
        )

    def _parse(self, response: httpx.Response, count: int) -> np.ndarray:
        try:
            data = response.json()["data"]
            rows = {
                int(item.get("index", position)): _floats(item["embedding"])
                for position, item in enumerate(data)
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._invalid(f"not an embeddings response ({exc!r})") from exc
        if len(data) != count or sorted(rows) != list(range(count)):
            raise self._invalid(
                f"{len(data)} embeddings (indexes {sorted(rows)[:10]}) for {count} inputs"
            )
        if len({len(row) for row in rows.values()}) != 1:
            raise self._invalid("embeddings of different lengths")
        return self._checked(np.array([rows[i] for i in range(count)], dtype=np.float32))

    def _checked(self, vectors: np.ndarray) -> np.ndarray:
        """Unit-length rows of one length: the one the request asked for or, after the
        first answer, the one the model has answered with before."""
        if vectors.shape[1] == 0:
            raise self._invalid("empty embeddings")
        expected = self.requested_dimensions or self._dimensions
        if expected is not None and vectors.shape[1] != expected:
            raise self._invalid(f"embeddings of {vectors.shape[1]} dimensions, expected {expected}")
        if not np.isfinite(vectors).all():
            raise self._invalid("embeddings with NaN or infinite values")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not (norms > 0).all():
            raise self._invalid("an all-zero embedding, which has no direction")
        return (vectors / norms).astype(np.float32)

    def _invalid(self, what: str) -> EmbeddingError:
        return EmbeddingError(
            f"embedding server {self.base_url} (model {self.model!r}) answered {what}"
        )


def _attempts(count: int) -> str:
    return "1 attempt" if count == 1 else f"{count} attempts"


def _floats(embedding: Any) -> list[float]:
    """A JSON list of numbers, or the base64 little-endian float32 encoding servers use
    for `encoding_format: base64`."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4").tolist()
    if not isinstance(embedding, list) or not all(
        isinstance(value, int | float) and not isinstance(value, bool) for value in embedding
    ):
        raise TypeError("an embedding is not a list of numbers")
    return embedding


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


def _reason(exc: httpx.HTTPError) -> str:
    """The innermost cause, e.g. "[Errno 111] Connection refused", not httpx's wrapper."""
    cause: BaseException = exc
    for _ in range(10):  # a bound, in case a chain loops
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    return str(cause) or type(cause).__name__


def _server_message(response: httpx.Response) -> str:
    """The message of an OpenAI-style `{"error": {"message": ...}}`, TEI's `{"error": "..."}`
    or else the start of the body."""
    try:
        error = response.json()["error"]
        return str(error.get("message", error) if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError):
        return response.text[:300].strip() or response.reason_phrase

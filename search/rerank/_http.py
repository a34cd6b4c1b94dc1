"""A rerank server: Text Embeddings Inference (`POST /rerank` with `texts`, answering a
list of `{index, score}`), or a Cohere / Jina / vLLM-compatible API (`documents` and
`model`, answering `{results: [{index, relevance_score}]}`). Which request is sent
follows RERANK_MODEL: TEI serves one model and takes no name; the hosted APIs need one.
Either response shape is accepted from any server.

Connection errors, 429 and 5xx are retried a few times with a short back-off (a search
waits for this); a timeout is not, since it would only double the wait.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
from django.conf import settings

from search.rerank._base import RerankError

RETRIES = 2
BACKOFF_SECONDS = 0.2


class HttpReranker:
    def __init__(self, *, base_url: str, api_key: str, model: str, timeout: float) -> None:
        if not base_url:
            raise RerankError("RERANK_BACKEND is http but RERANK_BASE_URL is empty")
        self.url = base_url.rstrip("/") + "/rerank"
        self.name = f"http:{model}" if model else f"http:{base_url.rstrip('/')}"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def _body(self, query: str, texts: list[str]) -> dict[str, Any]:
        if self._model:
            return {
                "model": self._model,
                "query": query,
                "documents": texts,
                "top_n": len(texts),
                "return_documents": False,
            }
        return {"query": query, "texts": texts, "truncate": True}

    def score(self, query: str, texts: list[str]) -> list[float]:
        response = self._post(self._body(query, texts))
        try:
            data = response.json()
        except ValueError as exc:
            raise RerankError(f"rerank server {self.url} answered something not JSON") from exc
        return parse_scores(data, count=len(texts), url=self.url)

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            try:
                response = httpx.post(
                    self.url, json=body, headers=self._headers, timeout=self._timeout
                )
            except httpx.TimeoutException as exc:
                raise RerankError(
                    f"rerank server {self.url} did not answer within {self._timeout:g} s"
                ) from exc
            except httpx.TransportError as exc:
                if last:
                    raise RerankError(f"rerank server {self.url} unreachable ({exc})") from exc
                time.sleep(BACKOFF_SECONDS * 2**attempt)
                continue
            if response.status_code < 400:
                return response
            if last or not (response.status_code == 429 or response.status_code >= 500):
                raise RerankError(
                    f"rerank server {self.url} answered {response.status_code}{_detail(response)}"
                )
            time.sleep(BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises


def _detail(response: httpx.Response) -> str:
    text = " ".join(response.text.split())[:200]
    return f": {text}" if text else ""


def parse_scores(data: Any, *, count: int, url: str) -> list[float]:
    """Scores by input position from either response shape; anything else is an error."""
    items = data.get("results") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise RerankError(f"rerank server {url} answered neither a list nor {{results: [...]}}")
    scores: list[float | None] = [None] * count
    for item in items:
        if not isinstance(item, dict):
            raise RerankError(f"rerank server {url} answered a result that is not an object")
        index, value = item.get("index"), item.get("score", item.get("relevance_score"))
        if not isinstance(index, int) or not 0 <= index < count:
            raise RerankError(f"rerank server {url} answered index {index!r} for {count} texts")
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise RerankError(f"rerank server {url} answered score {value!r}")
        scores[index] = float(value)
    missing = sum(score is None for score in scores)
    if missing:
        raise RerankError(f"rerank server {url} scored {count - missing} of {count} texts")
    return [float(score) for score in scores if score is not None]


def http_reranker() -> HttpReranker:
    return HttpReranker(
        base_url=settings.RERANK_BASE_URL,
        api_key=settings.RERANK_API_KEY,
        model=settings.RERANK_MODEL,
        timeout=settings.RERANK_TIMEOUT_SECONDS,
    )

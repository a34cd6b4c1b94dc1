"""A client for OpenAI-compatible Chat Completions servers (OpenAI, vLLM, Ollama,
llama.cpp's server), with httpx: the whole answer at once, or streamed as it is written.

Failures become one of three errors, each with the HTTP status the API answers:
no model configured (503), no answer within LLM_TIMEOUT (504), and an unreachable server,
an error status or a malformed answer (503: the service that makes answers is unavailable;
the message says why).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)
Message = dict[str, str]


class LLMError(Exception):
    status = 503


class LLMNotConfigured(LLMError):
    pass


class LLMTimeout(LLMError):
    status = 504


class LLMUnavailable(LLMError):
    pass


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str
    timeout: float
    max_tokens: int
    temperature: float

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    finish_reason: str | None


def llm_config() -> LLMConfig | None:
    """The configured model, or None when LLM_BASE_URL is empty."""
    if not settings.LLM_BASE_URL:
        return None
    return LLMConfig(
        base_url=settings.LLM_BASE_URL,
        model=settings.LLM_MODEL,
        api_key=settings.LLM_API_KEY,
        timeout=settings.LLM_TIMEOUT,
        max_tokens=settings.LLM_MAX_TOKENS,
        temperature=settings.LLM_TEMPERATURE,
    )


def llm_config_required() -> LLMConfig:
    config = llm_config()
    if config is None:
        raise LLMNotConfigured("no language model configured (set LLM_BASE_URL and LLM_MODEL)")
    return config


def _client(config: LLMConfig) -> httpx.Client:
    # A read timeout, not a total one: a long streamed answer is fine as long as the
    # model keeps writing.
    timeout = httpx.Timeout(config.timeout, connect=min(config.timeout, 10.0))
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    return httpx.Client(timeout=timeout, headers=headers)


def _payload(config: LLMConfig, messages: list[Message], *, stream: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
        "stream": stream,
    }
    if config.max_tokens:
        payload["max_tokens"] = config.max_tokens
    return payload


def _timeout_error(config: LLMConfig) -> LLMTimeout:
    return LLMTimeout(f"the language model did not answer within {config.timeout:g} s")


def _transport_error(config: LLMConfig, exc: httpx.HTTPError) -> LLMError:
    if isinstance(exc, httpx.TimeoutException):
        return _timeout_error(config)
    # The address stays in the log: callers need not learn where the model runs.
    logger.warning("language model at %s: %r", config.url, exc)
    return LLMUnavailable(f"the language model cannot be reached ({exc})")


def _error_message(error: Any) -> str:
    return str(error.get("message", error) if isinstance(error, dict) else error)


def _check_status(config: LLMConfig, response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.read().decode(errors="replace")
    except (httpx.HTTPError, httpx.StreamError):
        body = ""
    try:
        message = _error_message(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        message = body[:300].strip()
    if response.status_code in (408, 504):  # the model server's own gateway timed out
        raise _timeout_error(config)
    raise LLMUnavailable(f"the language model answered {response.status_code}: {message}")


def chat_complete(*, config: LLMConfig, messages: list[Message]) -> Completion:
    try:
        with _client(config) as client:
            response = client.post(config.url, json=_payload(config, messages, stream=False))
    except httpx.HTTPError as exc:
        raise _transport_error(config, exc) from exc
    _check_status(config, response)
    try:
        data = response.json()
        choice = data["choices"][0]
        return Completion(
            text=choice["message"]["content"] or "",
            model=data.get("model") or config.model,
            finish_reason=choice.get("finish_reason"),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMUnavailable("the language model's answer is not a chat completion") from exc


class ChatStream:
    """A streamed completion whose server has accepted the request: iterate for the
    answer's text as it comes; close() frees the connection (the API's response closes
    it, even when the client went away before reading)."""

    def __init__(self, config: LLMConfig, client: httpx.Client, response: httpx.Response):
        self.config = config
        self.model = config.model
        self.finish_reason: str | None = None
        self._client = client
        self._response = response

    def __iter__(self) -> Iterator[str]:
        try:
            for line in self._response.iter_lines():
                if not line.startswith("data:"):
                    continue  # SSE comments, keep-alives, `event:` lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    raise LLMUnavailable(
                        f"the language model failed: {_error_message(chunk['error'])}"
                    )
                self.model = chunk.get("model") or self.model
                for choice in chunk.get("choices") or []:
                    self.finish_reason = choice.get("finish_reason") or self.finish_reason
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
        except httpx.HTTPError as exc:
            raise _transport_error(self.config, exc) from exc
        except (ValueError, AttributeError, TypeError) as exc:
            raise LLMUnavailable("the language model's stream is not a chat completion") from exc

    def close(self) -> None:
        self._response.close()
        self._client.close()


def chat_stream_open(*, config: LLMConfig, messages: list[Message]) -> ChatStream:
    """Send the request and wait for the server to accept it, so that an unreachable or
    failing model is still an HTTP error of ours rather than an event in a 200 stream."""
    client = _client(config)
    try:
        request = client.build_request(
            "POST", config.url, json=_payload(config, messages, stream=True)
        )
        response = client.send(request, stream=True)
    except httpx.HTTPError as exc:
        client.close()
        raise _transport_error(config, exc) from exc
    if response.status_code >= 400:
        try:
            _check_status(config, response)
        finally:
            response.close()
            client.close()
    return ChatStream(config, client, response)

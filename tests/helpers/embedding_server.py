"""A small OpenAI-compatible embeddings server for the tests, on 127.0.0.1.

It answers POST /v1/embeddings as OpenAI, Text Embeddings Inference, vLLM and Ollama's
OpenAI mode do: `{"data": [{"object": "embedding", "index": i, "embedding": [...]}, ...]}`.
The embeddings are deterministic bags of words (each lower-cased word adds ±1 to a bucket
chosen by its hash), so texts that share words are similar and a search over them finds
what a person would expect. They are NOT unit length, as some real servers' are not: the
client must normalise. A request's `"dimensions"` overrides the server's dimension.

Every request is recorded (`requests`: body, headers). Knobs, changed between requests:
- `delay`: seconds before answering (timeouts);
- `fail_next(n, status)`: the next n requests answer an error status (500: retried);
- `rate_limit_next(n, retry_after)`: the next n answer 429 with Retry-After;
- `status`: every request answers this error status (None: off);
- `wrong_count`: answer one embedding fewer than inputs;
- `mangle`: a function given the answer's `data` list that returns what to send instead
  (out of order, mixed lengths, NaN...);
- `api_key`: when set, a request without `Authorization: Bearer <key>` answers 401;
- `max_inputs`: more inputs than this answer 413, as TEI does past its batch limit;
- `go_down()` / `come_up()`: stop listening, and listen again on the same port (a server
  restart); `closed_url()`: a base URL where nothing listens.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers.ports import free_port

WORD = re.compile(r"\w+")
DEFAULT_DIMENSIONS = 64


def embedding_for(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """The server's embedding of ``text``: word counts hashed into signed buckets (a
    stable hash, so another process computes the same). A text without words gets the
    first bucket, so that no vector is all zeros."""
    vector = [0.0] * dimensions
    for word in WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    if not any(vector):
        vector[0] = 1.0
    return vector


def closed_url() -> str:
    """A base URL on loopback where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}/v1"


class FakeEmbeddingServer:
    """Run with `with FakeEmbeddingServer() as server:`; `server.base_url` is what
    EMBEDDING_BASE_URL takes."""

    def __init__(self, dimensions: int = DEFAULT_DIMENSIONS) -> None:
        self.dimensions = dimensions
        self.delay = 0.0
        self.status: int | None = None
        self.wrong_count = False
        self.mangle: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
        self.api_key: str | None = None
        self.max_inputs: int | None = None
        self.requests: list[dict[str, Any]] = []  # each: {"body": ..., "headers": ...}
        self._faults: list[tuple[int, dict[str, str]]] = []  # (status, headers), next first
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends a delay when the server stops
        self._port = 0  # the first start picks one; restarts reuse it
        self._server: ThreadingHTTPServer | None = None
        # Open client connections: going down closes them too, or a client's kept-alive
        # connection would go on being served by its handler thread.
        self._connections: set[socket.socket] = set()
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def inputs(self) -> list[list[str]]:
        """The inputs of each request received, in order."""
        return [list(request["body"].get("input", [])) for request in self.requests]

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._faults.extend([(status, {})] * count)

    def rate_limit_next(self, count: int, retry_after: str = "1") -> None:
        with self._lock:
            self._faults.extend([(429, {"Retry-After": retry_after})] * count)

    def __enter__(self) -> FakeEmbeddingServer:
        self.come_up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.go_down()

    def come_up(self) -> None:
        self._release.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        self._port = int(self._server.server_address[1])
        # A short poll: shutdown() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def go_down(self) -> None:
        if self._server is None:
            return
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def _next_fault(self) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def answer(
        self, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) for one request to /v1/embeddings."""
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, _error("Incorrect API key provided", "invalid_request_error"), {}
        fault = self._next_fault()
        if fault is not None:
            return fault[0], _error(f"injected fault {fault[0]}", "server_error"), fault[1]
        if self.status:
            return self.status, _error("the model crashed", "server_error"), {}
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return (
                400,
                _error("'input' must be a string or a list of strings", "invalid_request_error"),
                {},
            )
        if self.max_inputs is not None and len(texts) > self.max_inputs:
            message = f"batch size {len(texts)} > maximum allowed batch size {self.max_inputs}"
            return 413, _error(message, "validation"), {}
        dimensions = int(body.get("dimensions") or self.dimensions)
        if self.wrong_count:
            texts = texts[:-1]
        data = [
            {"object": "embedding", "index": index, "embedding": embedding_for(text, dimensions)}
            for index, text in enumerate(texts)
        ]
        if self.mangle is not None:
            data = self.mangle(data)
        usage = {"prompt_tokens": sum(len(t) // 4 for t in texts), "total_tokens": 0}
        return 200, {"object": "list", "data": data, "model": body.get("model"), "usage": usage}, {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._lock:
                    server._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass  # the connection was shut down under it

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    return self._json(
                        400, _error("the body is not JSON", "invalid_request_error"), {}
                    )
                headers = dict(self.headers)
                server.requests.append({"body": body, "headers": headers})
                if self.path != "/v1/embeddings":
                    return self._json(404, _error(f"no route {self.path}", "not_found"), {})
                if server.delay:
                    server._release.wait(server.delay)
                self._json(*server.answer(body, headers))

            def _json(self, status: int, data: dict[str, Any], headers: dict[str, str]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

        return Handler


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind}}

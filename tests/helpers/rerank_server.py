"""A Text Embeddings Inference-style rerank server for the tests, on 127.0.0.1.

POST /rerank with `{"query", "texts"}` answers TEI's shape, a list of `{index, score}`
sorted best first; with `{"query", "documents", "model"}` (Cohere / Jina) it answers
`{"results": [{index, relevance_score}]}`. The score is deterministic: the share of the
text's words that are query words, so a test knows the order to expect (`overlap()`).
Faults, changed between requests by the test: `status` (answer that error every time),
`fail_times` (answer 500 that many times, then recover), `delay` (seconds before
answering). `down()` gives a URL where nothing listens.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers.ports import free_port

_WORD = re.compile(r"\w+")


def overlap(query: str, text: str) -> float:
    """The score the server gives: query words among the text's words."""
    wanted = {w.lower() for w in _WORD.findall(query)}
    words = [w.lower() for w in _WORD.findall(text)]
    return round(sum(w in wanted for w in words) / max(1, len(words)), 6)


def down_url() -> str:
    """A base URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


class FakeReranker:
    """Run with `with FakeReranker() as server:`; `server.base_url` is RERANK_BASE_URL."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.fail_times = 0
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []  # each: {"body": ..., "headers": ...}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an IPv4 server's address (typeshed allows bytes)
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeReranker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"body": body, "headers": dict(self.headers)})
                if self.path != "/rerank":
                    return self._json(404, {"error": f"no route {self.path}"})
                if server.delay:
                    time.sleep(server.delay)
                if server.fail_times > 0:
                    server.fail_times -= 1
                    return self._json(500, {"error": "the model crashed"})
                if server.status:
                    return self._json(server.status, {"error": "refused"})
                texts = body.get("texts") or body.get("documents") or []
                scored = sorted(
                    ((i, overlap(body.get("query", ""), t)) for i, t in enumerate(texts)),
                    key=lambda pair: -pair[1],
                )
                if "documents" in body:
                    results = [{"index": i, "relevance_score": s} for i, s in scored]
                    return self._json(200, {"results": results})
                self._json(200, [{"index": i, "score": s} for i, s in scored])

            def _json(self, status: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

"""A small OpenAI-compatible Chat Completions server for the tests, on 127.0.0.1.

It answers POST /v1/chat/completions, whole (JSON) or streamed (`"stream": true`: SSE
chunks ending with `data: [DONE]`), with a sentence that cites back every `[n]` that heads
a line of the prompt it received, so a test can see that the numbers made the round trip.
Knobs, changed between requests by the test: `delay` (seconds before answering, for
timeouts), `status` (an error status to answer instead), `stall_after` (stop sending
after that many streamed pieces and hang, for a failure mid-stream), `piece_delay`
(seconds between streamed pieces) and `answer` (a fixed answer instead).
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CITATION_LINE = re.compile(r"^\[(\d+)\] ", re.M)


def answer_for(messages: list[dict[str, str]]) -> str:
    prompt = "\n".join(m.get("content", "") for m in messages)
    numbers = list(dict.fromkeys(CITATION_LINE.findall(prompt)))
    if not numbers:
        return "The documents do not answer the question."
    return "The passages say so " + "".join(f"[{n}]" for n in numbers) + "."


class FakeLLM:
    """Run with `with FakeLLM() as llm:`; `llm.base_url` is what LLM_BASE_URL takes."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.status: int | None = None
        self.stall_after: int | None = None
        self.piece_delay = 0.01  # a little like a real model, so pieces arrive apart
        self.answer: str | None = None
        self.requests: list[dict[str, Any]] = []  # each: {"body": ..., "headers": ...}
        self._release = threading.Event()  # ends a stall when the server stops
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)  # an IPv4 server's address (typeshed allows bytes)
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                llm.requests.append({"body": body, "headers": dict(self.headers)})
                if self.path != "/v1/chat/completions":
                    return self._json(404, {"error": {"message": f"no route {self.path}"}})
                if llm.delay:
                    llm._release.wait(llm.delay)
                if llm.status:
                    return self._json(llm.status, {"error": {"message": "the model crashed"}})
                text = llm.answer or answer_for(body.get("messages", []))
                if body.get("stream"):
                    return self._stream(body, text)
                self._json(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "model": body.get("model") or "fake",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )

            def _json(self, status: int, data: dict[str, Any]) -> None:
                payload = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body: dict[str, Any], text: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                pieces = re.findall(r"\S+\s*", text)
                for index, piece in enumerate(pieces):
                    if llm.stall_after is not None and index >= llm.stall_after:
                        llm._release.wait(60)
                        return
                    last = index == len(pieces) - 1
                    self._event(
                        {
                            "id": "chatcmpl-test",
                            "object": "chat.completion.chunk",
                            "model": body.get("model") or "fake",
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"content": piece},
                                    "finish_reason": "stop" if last else None,
                                }
                            ],
                        }
                    )
                    time.sleep(llm.piece_delay)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, data: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")
                self.wfile.flush()

        return Handler

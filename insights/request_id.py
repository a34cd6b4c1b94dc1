"""Request ids: every request carries one (the caller's `X-Request-ID` when it is a sane
one, else a new one), answered in the same header, put on every log line the request
writes (`%(request_id)s`; "-" outside requests) and on its query log row, so one id
follows a search from the proxy's log to ours to the admin."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

HEADER = "X-Request-ID"
# Short and plain: the id goes into log lines, so it must not carry newlines or markup.
VALID = re.compile(r"[A-Za-z0-9._-]{1,64}")
NONE = "-"

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NONE)


def current_request_id() -> str:
    """The id of the request being served ("" outside one)."""
    value = request_id_var.get()
    return "" if value == NONE else value


def request_id_from(value: str | None) -> str:
    """The caller's id if valid, else a new one."""
    if value and VALID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """First in MIDDLEWARE, so that every later log line of the request carries the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_from(request.headers.get(HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        # Not reset when the view returns: Django logs a 4xx/5xx after the middleware
        # (django.request) and a streamed body is made later still; request_finished
        # (the response closed) clears it (insights/apps.py).
        request_id_var.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


def request_id_clear(**kwargs: Any) -> None:
    """request_finished: later lines of this thread belong to no request."""
    request_id_var.set(NONE)


class RequestIdFilter(logging.Filter):
    """Gives every record `request_id` (for handlers' formats; installed in LOGGING)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def install_record_factory() -> None:
    """Every record made from now on carries the request id of the context it was made
    in, whichever handler (or test) reads it. Idempotent."""
    current = logging.getLogRecordFactory()
    if getattr(current, "request_ids", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        record.request_id = request_id_var.get()
        return record

    factory.request_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)

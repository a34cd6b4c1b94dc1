"""Request ids: taken from X-Request-ID when sane, else made; answered in the header, on
every log line of the request (Django's own 4xx line included) and on the query log row."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from rest_framework.test import APIClient

from insights.models import QueryLog
from insights.request_id import NONE, request_id_clear, request_id_var


def test_a_given_request_id_is_answered_logged_and_kept_on_the_row(
    user_client: APIClient, corpus: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    response = user_client.post(
        "/api/v1/search/", {"query": "volcano"}, HTTP_X_REQUEST_ID="proxy-1.a_B"
    )
    assert response["X-Request-ID"] == "proxy-1.a_B"
    assert QueryLog.objects.get().request_id == "proxy-1.a_B"
    with caplog.at_level(logging.WARNING, logger="django.request"):
        bad = user_client.post(
            "/api/v1/search/", {"query": ""}, format="json", HTTP_X_REQUEST_ID="req-400"
        )
    assert bad.status_code == 400 and bad["X-Request-ID"] == "req-400"
    lines = [r for r in caplog.records if r.name == "django.request"]
    assert lines and all(getattr(r, "request_id", None) == "req-400" for r in lines)
    assert request_id_var.get() == NONE  # the response closed: no longer this request's


@pytest.mark.parametrize("given", ["", "has space", "a" * 65, "new\nline", "<b>"])
def test_an_unusable_request_id_is_replaced_by_a_new_one(
    anon_client: APIClient, corpus: dict[str, Any], given: str
) -> None:
    response = anon_client.get("/api/v1/search/", {"query": "ocean"}, HTTP_X_REQUEST_ID=given)
    made = response["X-Request-ID"]
    assert made != given and len(made) == 32 and made.isalnum()
    assert QueryLog.objects.get().request_id == made


def test_log_lines_name_their_request_in_the_console_format(settings: Any) -> None:
    from django.utils.log import configure_logging

    fmt = settings.LOGGING["formatters"]["plain"]["format"]
    assert "%(request_id)s" in fmt
    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    # Outside any request (an earlier test's request may have left its id in this thread).
    request_id_clear()
    record = logging.getLogger("x").makeRecord("x", logging.INFO, "f", 1, "hello", (), None)
    assert logging.Formatter(fmt).format(record).endswith("[-] hello")

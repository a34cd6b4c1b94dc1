"""The API's own documentation: every operation says in a line what it does, and the
Swagger UI page works in a real browser under the API's CSP without fetching anything
from outside the product (the README promises nothing is fetched at run time)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from playwright.sync_api import Browser

from tests.helpers.browser import chromium

METHODS = {"get", "post", "put", "patch", "delete"}


def test_every_operation_has_a_summary(db: None) -> None:
    schema = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    operations = [
        (method.upper(), path, operation.get("summary", ""))
        for path, item in schema.json()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    assert len(operations) >= 28
    missing = [f"{method} {path}" for method, path, summary in operations if not summary.strip()]
    assert not missing, f"operations without a summary: {missing}"
    summaries = [summary for _, _, summary in operations]
    assert len(set(summaries)) == len(summaries), "two operations read the same"


def test_redoc_is_gone_and_its_old_address_leads_to_swagger_ui(db: None) -> None:
    response = Client().get("/api/v1/redoc/")
    assert response.status_code == 302 and response["Location"] == "/api/v1/docs/"
    docs = Client().get("/api/v1/docs/")
    directives = dict(
        part.strip().split(" ", 1) for part in docs["Content-Security-Policy"].split(";")
    )
    assert directives["script-src"] == "'self'"
    assert b"<script>" not in docs.content  # the set-up script comes from a URL


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_offline_under_the_csp(browser: Browser, live_server: Any) -> None:
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/api/v1/docs/")
    page.get_by_text("Search (query in a JSON body)").first.wait_for(timeout=15_000)
    page.wait_for_load_state("networkidle")
    ours = urlsplit(live_server.url).netloc
    outside = [url for url in requested if urlsplit(url).netloc not in (ours, "")]
    assert not outside, f"fetched from outside the product: {outside}"
    assert not problems, problems  # CSP violations are console errors in Chromium
    context.close()

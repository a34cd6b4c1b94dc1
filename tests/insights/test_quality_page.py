"""The admin's "Search quality" page: figures from the log and the feedback, drawn on
the server (no script), only what the staff member may see; a Chromium screenshot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect
from rest_framework.test import APIClient

from insights import log_writer
from insights.models import QueryLog
from tests.factories import CollectionFactory, UserFactory
from tests.insights.conftest import OCEAN, VOLCANO
from tests.search import test_browser
from tests.search.test_browser import Tab, sign_in

browser = test_browser.browser
tabs = test_browser.tabs


def searches(user: Any, corpus_docs: dict[str, Any]) -> None:
    client = APIClient()
    client.force_authenticate(user)
    for query in ("volcano", "volcano", "ocean", "photosynthesis"):
        log_id = client.post("/api/v1/search/", {"query": query, "mode": "keyword"})[
            "X-Query-Log-Id"
        ]
        log_writer.flush()  # outside a transaction the row is written off the request path
        row = QueryLog.objects.get(pk=log_id)
        if row.results:
            client.post(
                "/api/v1/feedback/",
                {"query_log": log_id, "document": row.results[0]["document"], "useful": False},
                format="json",
            )
    client.post("/api/v1/search/", {"query": "lava", "mode": "semantic"})
    log_writer.flush()


def test_the_quality_page_shows_the_figures(user: Any, corpus: dict[str, Any]) -> None:
    root: Any = UserFactory.create(is_staff=True, is_superuser=True)
    searches(root, corpus["docs"])
    admin = Client()
    admin.force_login(root)
    page = admin.get("/admin/insights/querylog/quality/").content.decode()
    assert '<strong id="total-queries">5</strong> queries' in page
    assert "<strong>20 %</strong> found nothing" in page  # photosynthesis
    assert "<strong>0 %</strong> of votes say useful" in page
    # Five charts: the four above and drift's similarity (the "lava" search is semantic).
    assert page.count('<svg class="chart"') == 5 and "<script" not in page.split("<svg")[1]
    top = page.split('id="top-queries"')[1].split("</table>")[0]
    assert ">volcano</a></td><td>2</td>" in top
    zero = page.split('id="zero-queries"')[1].split("</table>")[0]
    assert ">photosynthesis</a>" in zero and "/admin/insights/querylog/" in zero
    downvoted = page.split('id="downvoted"')[1].split("</table>")[0]
    assert "/admin/documents/document/" in downvoted
    assert "keyword" in page and "semantic" in page  # latency per mode


def test_staff_see_only_figures_and_text_they_may_read(user: Any, corpus: dict[str, Any]) -> None:
    searches(user, corpus["docs"])  # over the user's private collection too
    staff: Any = UserFactory.create(is_staff=True)
    admin = Client()
    admin.force_login(staff)
    page = admin.get("/admin/insights/querylog/quality/").content.decode()
    assert '<strong id="total-queries">0</strong>' in page and "volcano" not in page
    assert Client().get("/admin/insights/querylog/quality/").status_code == 302


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_quality_page_in_chromium(tabs: Callable[[int], Tab], ingest: Any) -> None:
    ingest(
        CollectionFactory.create(name="Earth", is_public=True), {"v.txt": VOLCANO, "o.txt": OCEAN}
    )
    root: Any = UserFactory.create(is_staff=True, is_superuser=True)
    searches(root, {})
    page = tabs(1280).page
    sign_in(page, root.username)
    page.goto("/admin/insights/querylog/")
    page.get_by_role("link", name="Search quality charts").click()
    expect(page.get_by_role("heading", name="Queries per day")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(5)
    expect(page.locator("#top-queries")).to_contain_text("volcano")
    test_browser.ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=test_browser.ARTIFACTS / "search-quality.png", full_page=True)

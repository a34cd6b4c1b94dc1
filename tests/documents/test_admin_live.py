"""The admin's documents list, live: its JSON status endpoint (staff only, only the rows
asked for and allowed), and in Chromium with a REAL worker — rows turn ready in place
without a reload (ticked boxes and typed search text stay), the upload's batch bar
fills, the list fits 1366 px; without JavaScript a refresh link, and the banner when no
worker runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, FilePayload, Page, expect

from documents.models import Document, WorkerBeat
from tests.factories import CollectionFactory, DocumentFactory, UserFactory
from tests.helpers.browser import chromium
from tests.helpers.worker import Worker, database_url

STATUS_URL = "/admin/documents/document/status/"
CHANGELIST_URL = "/admin/documents/document/"
UPLOAD_URL = "/admin/documents/document/upload/"
PASSWORD = "correct horse battery"  # tests/factories.py
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts"


def _staff_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _age(document: Document, seconds: int) -> None:
    Document.objects.filter(pk=document.pk).update(
        updated=timezone.now() - timedelta(seconds=seconds)
    )


# --- The status endpoint ---------------------------------------------------------------


@pytest.mark.django_db
def test_status_endpoint_answers_the_rows_asked_for_that_the_staff_member_may_see() -> None:
    staff = UserFactory.create(is_staff=True)
    mine = CollectionFactory.create(owner=staff)
    theirs = CollectionFactory.create()
    busy = DocumentFactory.create(
        collection=mine,
        status="processing",
        progress_phase="embedding",
        progress_done=12,
        progress_total=40,
    )
    hidden = DocumentFactory.create(collection=theirs, status="pending")
    client = _staff_client(staff)

    body = client.get(STATUS_URL, {"ids": f"{busy.pk},{hidden.pk}"}).json()
    assert body["documents"] == [
        {
            "id": busy.pk,
            "status": "processing",
            "progress": "embedding 12 of 40 chunks",
            "error": "",
            "chunk_count": 0,
            "embedding_model": "-",
        }
    ]
    assert body["busy"] == 1 and body["busy_text"] == "1 document waiting or processing"

    for bad in ("1,x", "1;2", "9" * 30, ",".join(["1"] * 1001)):
        response = client.get(STATUS_URL, {"ids": bad})
        assert response.status_code == 400
        assert "comma-separated numbers" in response.json()["detail"]

    # Signed out, or not staff: the admin's sign-in page, no data.
    for outsider in (Client(), _staff_client(UserFactory.create(is_staff=False))):
        response = outsider.get(STATUS_URL, {"ids": str(busy.pk)})
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_an_upload_shows_its_batch_and_the_list_tells_when_no_worker_runs(
    settings: Any,
) -> None:
    settings.WORKER_STALE_SECONDS = 180
    staff = UserFactory.create(is_staff=True)
    collection = CollectionFactory.create(owner=staff)
    client = _staff_client(staff)
    response = client.post(
        UPLOAD_URL,
        {
            "collection": collection.pk,
            "files": [
                SimpleUploadedFile("a.txt", b"Loess is wind-blown silt."),
                SimpleUploadedFile("b.txt", b"Varves are yearly lake layers."),
            ],
        },
        follow=True,
    )
    html = response.content.decode()
    assert '<span id="batch-text">0 of 2 ready · waiting for the first document</span>' in html
    assert '<progress id="batch-bar" max="2" value="0">' in html
    # Just uploaded: a running worker would not have taken them yet either.
    assert "No worker has run" not in html

    for document in Document.objects.all():
        _age(document, 60)
    WorkerBeat.objects.create(name="qcluster", seen_at=timezone.now() - timedelta(hours=3))
    html = client.get(CHANGELIST_URL).content.decode()
    assert re.search(
        r'<p id="worker-notice" class="worker-notice" role="status">No worker has run since '
        r"[^<]+; start one with `python manage.py qcluster`",
        html,
    )
    status = client.get(STATUS_URL, {"ids": ""}).json()
    assert status["notice"].startswith("No worker has run since")
    assert status["batch"]["text"] == "0 of 2 ready · waiting for the first document"

    # A worker seen a minute ago: no banner.
    WorkerBeat.objects.filter(name="qcluster").update(seen_at=timezone.now())
    assert client.get(STATUS_URL).json()["notice"] is None


# --- In Chromium -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin-live-media")


@pytest.fixture
def shared_media(_test_settings: None, settings: Any, media_root: Path) -> None:
    settings.MEDIA_ROOT = media_root  # the web server stores originals where the worker reads


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def open_page(browser: Browser, live_server: Any) -> Iterator[Callable[..., Page]]:
    """A 1366x768 page in a context of its own; script errors and CSP violations
    (console errors) fail the test."""
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def open_(*, javascript: bool = True) -> Page:
        context = browser.new_context(
            base_url=live_server.url,
            viewport={"width": 1366, "height": 768},
            java_script_enabled=javascript,
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda m: (
                problems.append(m.text)
                if m.type == "error" and not m.location["url"].endswith("/favicon.ico")
                else None
            ),
        )
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, f"errors in the browser console: {problems}"


def _sign_in(page: Page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def _fits(page: Page) -> None:
    """No column cut off and no sideways scrolling at this width."""
    widths = page.evaluate(
        """() => {
          const table = document.getElementById('result_list');
          const box = table.closest('.results') || table.parentElement;
          return {page: document.documentElement.scrollWidth, view: window.innerWidth,
                  table: table.scrollWidth, box: box.clientWidth};
        }"""
    )
    assert widths["page"] <= widths["view"], widths
    assert widths["table"] <= widths["box"], widths


LONG_NAME = "field-notes-" + "x" * 110 + ".txt"
GLACIERS = "\n\n".join(
    f"Part {i}. Glaciers flow downhill under their own weight and carve U-shaped valleys."
    for i in range(30)
)


@pytest.mark.browser
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_list_updates_in_place_while_a_real_worker_processes_an_upload(
    open_page: Callable[..., Page],
    shared_media: None,
    media_root: Path,
    tmp_path: Path,
) -> None:
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    CollectionFactory.create(name="Glaciology", slug="glaciology", owner=staff)
    worker = Worker(
        database_url=database_url(), media_root=media_root, log_path=tmp_path / "qcluster.log"
    )
    try:
        worker.wait_ready()
        page = open_page()
        _sign_in(page, staff.username)
        page.goto(UPLOAD_URL)
        page.get_by_role("combobox", name="Collection").select_option(label="Glaciology")
        page.get_by_label("Files").set_input_files(
            [
                FilePayload(name="glaciers.txt", mimeType="text/plain", buffer=GLACIERS.encode()),
                FilePayload(name=LONG_NAME, mimeType="text/plain", buffer=b"Moraines mark ice."),
                # Looks like a PDF, is not one: it fails, with its reason in the list.
                FilePayload(name="broken.pdf", mimeType="application/pdf", buffer=b"%PDF-1.4 no"),
            ]
        )
        page.get_by_role("button", name="Upload").click()
        expect(page).to_have_url(re.compile(r"/admin/documents/document/$"))
        expect(page.get_by_text("Queued 3 document(s) for processing")).to_be_visible()

        # What a reload would wipe: a mark on the window, a ticked box, half-typed search.
        page.evaluate("window.__sameDocument = true")
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(3)
        first_box = rows.first.locator("input.action-select")
        first_box.check()
        page.locator("#searchbar").fill("glac")

        statuses = page.locator("#result_list td.field-status_badge .status")
        expect(statuses).to_have_text([re.compile("^(ready|failed)$")] * 3, timeout=120_000)
        expect(page.locator("#result_list .status-failed")).to_have_count(1)
        expect(page.locator("#batch-text")).to_have_text("2 of 3 ready · 1 failed · done")
        assert page.locator("#batch-bar").evaluate("bar => bar.value") == 3
        expect(page.locator("#busy-note")).to_be_hidden()
        assert page.evaluate("window.__sameDocument") is True  # never reloaded
        expect(first_box).to_be_checked()
        expect(page.locator("#searchbar")).to_have_value("glac")
        expect(page.locator("#live-status")).to_have_attribute("data-live", "1")
        # The cells that change with processing changed too.
        failed_row = rows.filter(has=page.locator(".status-failed"))
        expect(failed_row.locator("td.field-short_error")).not_to_have_text("")
        ready_chunks = rows.filter(has=page.locator(".status-ready")).locator(
            "td.field-chunk_count"
        )
        expect(ready_chunks.first).not_to_have_text("0")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / "admin-documents-1366.png", full_page=True)
        _fits(page)
    finally:
        worker.stop()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_without_javascript_or_a_worker_the_list_still_explains_itself(
    open_page: Callable[..., Page], settings: Any
) -> None:
    settings.WORKER_STALE_SECONDS = 180
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    collection = CollectionFactory.create(name="Glaciology", owner=staff)
    waiting = DocumentFactory.create(collection=collection, status="pending", title="Waiting " * 30)
    _age(waiting, 60)
    page = open_page(javascript=False)
    _sign_in(page, staff.username)
    page.goto(CHANGELIST_URL)
    notice = page.locator("#worker-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("No worker has run yet; start one with")
    expect(page.locator("#busy-text")).to_have_text("1 document waiting or processing")
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    page.get_by_role("link", name="Refresh the list").click()
    expect(page).to_have_url(re.compile(r"/admin/documents/document/$"))
    expect(page.locator("#result_list .status-pending")).to_have_count(1)
    _fits(page)

"""The search page and the document page in a real browser (Debian's Chromium driven by
Playwright), against the live server, with documents uploaded through the admin and
embedded by a REAL worker (`manage.py qcluster`) on the test database.

Screenshots land in artifacts/ (git-ignored): search page at 1280 and 390 px wide, and
a document page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from django.conf import settings
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    FilePayload,
    Page,
    expect,
)

from tests.factories import CollectionFactory, UserFactory
from tests.helpers.browser import chromium
from tests.helpers.worker import Worker, database_url

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "artifacts"
PASSWORD = "correct horse battery"  # tests/factories.py
PWNED = "<script>window.__pwned=1</script>"

VOLCANOES = """# Volcanoes

## How they form

Volcanoes form where magma from the mantle rises through cracks in the crust. Most of
them sit along the edges of tectonic plates, where one plate sinks beneath another or
two plates pull apart. Hot spots such as Hawaii are the exception: there a plume of hot
mantle melts its way up through the middle of a plate.

## Eruptions

{eruptions}

## Hazards

Pyroclastic flows are avalanches of hot gas and rock that race down the slopes faster
than a car can drive. They are the deadliest hazard of an explosive eruption; lahars,
mudflows of ash and water, can travel much farther along river valleys.
"""
ERUPTIONS = " ".join(
    f"Eruption style {i} depends on how much gas and silica the magma holds." for i in range(40)
)
OCEANS = "Oceans cover most of the Earth and hold salt water. Tides follow the moon."
EVIL = f"Security notes: a document that says {PWNED} must show that text and run nothing."


@pytest.fixture(scope="module")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-media")


@pytest.fixture(autouse=True)
def _media_shared_with_the_worker(_test_settings: None, settings: Any, media_root: Path) -> None:
    settings.MEDIA_ROOT = media_root  # the web server stores originals where the worker reads


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None,
    django_db_blocker: Any,
    media_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    """One real worker for the module (its model loads once), stopped before the test
    database is dropped."""
    with django_db_blocker.unblock():
        url = database_url()
    log_path = tmp_path_factory.mktemp("worker") / "qcluster.log"
    worker = Worker(database_url=url, media_root=media_root, log_path=log_path)
    worker.wait_ready()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


class Tab:
    """A page in its own browser context that records script errors, CSP violations
    (Chromium reports them as console errors) and failed requests, on our pages and the
    admin's alike."""

    def __init__(self, browser: Browser, base_url: str, *, width: int, height: int = 900):
        self.context: BrowserContext = browser.new_context(
            base_url=base_url, viewport={"width": width, "height": height}, accept_downloads=True
        )
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))
        self.page.on(
            "response",
            lambda r: self.problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium asks every page for /favicon.ico; the admin's pages have none.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            self.problems.append(f"{message.text} ({message.location['url']})")


@pytest.fixture
def tabs(browser: Browser, live_server: Any) -> Iterator[Callable[[int], Tab]]:
    opened: list[Tab] = []

    def open_tab(width: int = 1280) -> Tab:
        tab = Tab(browser, live_server.url, width=width)
        opened.append(tab)
        return tab

    yield open_tab
    for tab in opened:
        tab.context.close()
    problems = [p for tab in opened for p in tab.problems]
    assert not problems, f"errors in the browser console: {problems}"


def serious_accessibility_violations(page: Page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def sign_in(page: Page, username: str) -> None:
    page.goto("/")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Sign in").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()


def upload_in_admin(page: Page, collection_name: str, files: dict[str, str]) -> None:
    page.goto("/admin/documents/document/upload/")
    page.get_by_role("combobox", name="Collection").select_option(label=collection_name)
    page.get_by_label("Files").set_input_files(
        [
            FilePayload(name=name, mimeType="text/plain", buffer=text.encode())
            for name, text in files.items()
        ]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text(f"Queued {len(files)} document(s) for processing")).to_be_visible()


def wait_until_searchable(page: Page, worker: Worker, count: int, timeout: float = 90) -> None:
    """Reload the search page until it no longer reports documents being embedded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.goto("/")
        lead = page.locator(".lead")
        if (
            page.locator("#busy-notice").count() == 0
            and lead.count()
            and lead.inner_text().startswith(f"{count} documents")
        ):
            return
        time.sleep(0.5)
    pytest.fail(f"documents not embedded after {timeout} s; worker log:\n{worker.output()}")


def test_upload_in_admin_then_find_read_and_download_from_the_search_page(
    tabs: Callable[[int], Tab], worker: Worker
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    CollectionFactory.create(name="Earth science", slug="earth", is_public=True)
    tab = tabs(1280)
    page = tab.page

    sign_in(page, staff.username)
    page.goto("/")
    expect(page.get_by_role("heading", name="No documents yet")).to_be_visible()
    page.get_by_role("link", name="Upload documents").click()
    expect(page).to_have_url(re.compile(r"/admin/documents/document/upload/$"))
    upload_in_admin(
        page,
        "Earth science",
        {
            "volcanoes.md": VOLCANOES.format(eruptions=ERUPTIONS),
            "oceans.txt": OCEANS,
            "security-notes.txt": EVIL,
        },
    )
    wait_until_searchable(page, worker, count=3)

    # Search as you type (static/js/search.js): no submit, the results and URL follow.
    page.get_by_label("Search query").fill("salt water tides")
    # The title of a text file is its first short line. The first search loads the
    # embedding model in the server: allow for that on a busy machine.
    expect(page.locator(".result").first.get_by_role("heading")).to_have_text(
        OCEANS, timeout=30_000
    )
    expect(page).to_have_url(re.compile(r"/\?q=salt\+water\+tides&mode=hybrid$"))
    page.locator("label.segment", has_text="Keyword").click()
    expect(page).to_have_url(re.compile(r"mode=keyword$"))
    expect(page.locator(".summary")).to_contain_text("Keyword search")

    # A plain form submission: the whole state lands in the URL.
    page.locator("label.segment", has_text="Hybrid").click()
    page.get_by_label("Search query").fill("pyroclastic flows")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"/\?q=pyroclastic\+flows&mode=hybrid&collection=all$"))
    first = page.locator(".result").first
    expect(first.get_by_role("heading")).to_have_text("Volcanoes")
    expect(first.locator("mark").first).to_have_text(re.compile("Pyroclastic", re.I))
    expect(page.locator(".summary")).to_contain_text(re.compile(r"\d+ results? · showing 1–"))
    expect(page.locator(".summary .timing")).to_have_text(re.compile(r"^\d+ ms$"))
    expect(first.locator(".result-meta")).to_contain_text("Earth science")

    # The score explanation, on demand.
    explanation = first.locator("details.why dl")
    expect(explanation).to_be_hidden()
    first.get_by_text("Why this result").click()
    keyword, semantic, fused = explanation.locator("dd").all()
    expect(keyword).to_have_text(re.compile(r"^rank 1, BM25 score \d+\.\d{3}$"))
    expect(semantic).to_have_text(re.compile(r"^rank \d+, cosine similarity 0\.\d{3}$"))
    # Score fusion (the default): the top keyword hit scales to 1 in its leg.
    expect(fused).to_have_text(
        re.compile(r"^\d\.\d{4} = 0\.6 × [01]\.\d{3} \(semantic\) \+ 0\.4 × 1\.000 \(keyword\)")
    )
    assert not serious_accessibility_violations(page)
    page.mouse.move(0, 0)
    page.screenshot(path=ARTIFACTS / "search-desktop.png", full_page=True)

    # The result opens the document at the cited chunk, highlighted and scrolled to.
    first.get_by_role("link", name="Volcanoes").click()
    expect(page).to_have_url(re.compile(r"/documents/\d+/\?chunk=(\d+)&back=[^#]+#chunk-\1$"))
    cited = page.locator(".chunk.cited")
    expect(cited).to_have_count(1)
    expect(cited).to_contain_text("Pyroclastic flows are avalanches")
    expect(cited).to_be_in_viewport()
    assert page.evaluate("document.querySelector(':target').id") == cited.get_attribute("id")
    assert page.evaluate("window.scrollY") > 0
    assert page.locator(".chunk").count() > 2
    expect(page.get_by_role("heading", level=1)).to_have_text("Volcanoes")
    expect(page.locator(".badge")).to_have_text("Ready")
    assert not serious_accessibility_violations(page)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=ARTIFACTS / "document.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download original").click()
    assert download.value.suggested_filename == "volcanoes.md"

    # A document containing <script> shows the text and runs nothing.
    page.goto("/?q=security+notes&mode=keyword")
    snippet = page.locator(".result .snippet").first
    expect(snippet).to_contain_text("<script>window.__pwned=1</script")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    page.locator(".result").first.get_by_role("link").click()
    expect(page.locator(".chunk.cited .chunk-text")).to_contain_text(PWNED)
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # Anonymous, at phone width: the public collection, no sideways scrolling.
    phone = tabs(390).page
    phone.goto("/?q=how+do+volcanoes+form")
    expect(phone.locator(".result").first.get_by_role("heading")).to_have_text("Volcanoes")
    account = phone.get_by_role("navigation", name="Account")
    expect(account.get_by_role("link", name="Sign in")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    assert not serious_accessibility_violations(phone)
    phone.screenshot(path=ARTIFACTS / "search-phone.png", full_page=True)


def test_keyboard_only_search_and_the_empty_states(tabs: Callable[[int], Tab]) -> None:
    CollectionFactory.create(name="Private", slug="private", is_public=False)
    page = tabs(1280).page
    page.goto("/")
    expect(page.get_by_role("heading", name="No documents yet")).to_be_visible()
    expect(page.get_by_role("link", name="upload documents in the admin")).to_have_attribute(
        "href", "/admin/documents/document/upload/"
    )
    assert not serious_accessibility_violations(page)

    # The query box has the focus on arrival; Tab moves on with a visible focus ring, and
    # the mode is chosen with the arrow keys.
    expect(page.get_by_label("Search query")).to_be_focused()
    page.keyboard.type("-everything")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Search", exact=True)).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    page.keyboard.press("Tab")
    expect(page.get_by_role("radio", name=re.compile("Hybrid"))).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name=re.compile("Keyword"))).to_be_checked()
    page.get_by_label("Search query").press("Enter")
    expect(page).to_have_url(re.compile(r"q=-everything&mode=keyword"))
    expect(page.get_by_role("alert")).to_contain_text("Needs at least one word to search for.")
    expect(page.get_by_label("Search query")).to_have_value("-everything")
    assert not serious_accessibility_violations(page)

    # After a search nothing takes the focus: the first Tab reaches the skip link, shown
    # on screen, and it leads to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

"""Ask on the search page: offered when a model is configured; the answer streams in with
citation links (static/js/ask.js) in a real browser, and without JavaScript the form posts
and the page shows the whole answer. The model is tests/helpers/llm_server.py on loopback."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser, expect

from documents.models import Chunk
from tests.factories import CollectionFactory, UserFactory
from tests.helpers.llm_server import FakeLLM
from tests.search import test_browser
from tests.search.test_browser import Tab, serious_accessibility_violations, sign_in

# The search page's browser and tabs (a tab fails its test on any console error, CSP
# violation or failed request), shared as fixtures.
browser = test_browser.browser
tabs = test_browser.tabs

VOLCANO = (
    "Volcanoes form where magma rises through cracks in the crust. Pyroclastic flows are "
    "avalanches of hot gas and rock, the deadliest hazard of an explosive eruption."
)
LAHARS = "Lahars are mudflows of volcanic ash and water that travel far along river valleys."
SECRET = "Lab notes: volcano sensor hazards were measured in the private lab."
# A citation link: the cited chunk, and the search to return to from the document page.
CITE = re.compile(r"/documents/(\d+)/\?chunk=(\d+)&back=[^#]*q%3Dvolcano[^#]*#chunk-\2$")
# The streamed answer's links are the API's citation URLs (no search to return to).
API_CITE = re.compile(r"/documents/(\d+)/\?chunk=(\d+)#chunk-\2$")


@pytest.fixture
def llm(settings: Any) -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_MODEL = "test-model"
        yield server


def library(ingest: Any) -> Any:
    owner = UserFactory.create()
    ingest(
        CollectionFactory.create(name="Earth science", is_public=True),
        {"volcanoes.txt": VOLCANO, "lahars.txt": LAHARS},
    )
    ingest(CollectionFactory.create(name="Lab", owner=owner), {"lab.txt": SECRET})
    return owner


def answer_region(page: str) -> str:
    match = re.search(r'<div class="answer" id="answer".*?</section>', page, re.S)
    assert match, "no answer region"
    return match.group(0)


@pytest.mark.django_db
def test_ask_is_offered_only_with_a_model_and_results(
    client: Client, ingest: Any, settings: Any
) -> None:
    library(ingest)
    settings.LLM_BASE_URL = ""
    assert "ask-form" not in client.get("/", {"q": "volcano"}).content.decode()
    settings.LLM_BASE_URL, settings.LLM_MODEL = "http://127.0.0.1:9/v1", "tiny"
    page = client.get("/", {"q": "volcano"}).content.decode()
    assert '<button type="submit" class="primary">Ask</button>' in page
    assert "A language model (tiny) answers “volcano”" in page
    assert 'data-api="/api/v1/ask/"' in page and 'name="csrfmiddlewaretoken"' in page
    nothing = client.get("/", {"q": "photosynthesis", "mode": "keyword"}).content.decode()
    assert "ask-form" not in nothing  # no passages, nothing to answer from


@pytest.mark.django_db
def test_posting_ask_shows_the_whole_answer_with_escaped_text_and_citation_links(
    client: Client, ingest: Any, llm: FakeLLM
) -> None:
    library(ingest)
    llm.answer = "<img src=x onerror=alert(1)> Lava flows [1], lahars [2][9]."
    response = client.post("/?q=volcano+hazards&mode=hybrid&collection=all")
    assert response.status_code == 200
    region = answer_region(response.content.decode())
    assert "&lt;img src=x onerror=alert(1)&gt; Lava flows " in region and "<img" not in region
    links = re.findall(r'<a class="cite" href="([^"]+)" title="([^"]+)">\[(\d)\]</a>', region)
    assert [number for _, _, number in links] == ["1", "2"]  # [9] names no passage: text
    assert "[9]." in region
    for url, title, _ in links:
        cited = CITE.match(url.replace("&amp;", "&"))
        assert cited is not None, url
        document_id, chunk_id = cited.groups()
        assert Chunk.objects.get(pk=chunk_id).document_id == int(document_id)
        assert title in {"volcanoes.txt", LAHARS}  # a short first line is the title
    assert region.count("<li value=") == 2  # the sources the answer cites
    assert llm.requests[-1]["body"]["stream"] is False
    # The search itself is still there below the answer.
    assert 'class="result-title"' in response.content.decode()


@pytest.mark.django_db
def test_a_failing_model_is_explained_on_the_page(
    client: Client, ingest: Any, llm: FakeLLM, settings: Any
) -> None:
    library(ingest)
    llm.status = 500
    page = client.post("/?q=volcano").content.decode()
    assert "The language model answered 500: the model crashed." in answer_region(page)
    settings.LLM_TIMEOUT = 0.2
    llm.status, llm.delay = None, 2
    page = client.post("/?q=volcano").content.decode()
    assert "The language model did not answer within 0.2 s." in answer_region(page)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_answer_streams_in_with_citation_links_to_the_document(
    tabs: Callable[[int], Tab], ingest: Any, llm: FakeLLM
) -> None:
    owner = library(ingest)
    llm.piece_delay = 0.3  # slow enough to watch the answer being written
    page = tabs(1280).page
    sign_in(page, owner.username)  # a session: the stream's POST needs the CSRF token
    page.goto("/?q=volcano+hazards")
    ask = page.locator(".ask")
    expect(ask.get_by_role("heading", name="Answer from these documents")).to_be_visible()
    ask.get_by_role("button", name="Ask").click()

    status = ask.locator(".answer-status")  # the answer's own (its feedback form has one too)
    expect(status).to_have_text("Writing the answer…")
    text = ask.locator(".answer-text")
    expect(text).to_have_text(re.compile(r"^The passages"))
    expect(status).to_have_text("Answer complete.")
    expect(text).to_have_text("The passages say so [1][2][3].")
    assert page.url.endswith("/?q=volcano+hazards")  # streamed: no page load
    assert llm.requests[-1]["body"]["stream"] is True
    cites = text.locator("a.cite")
    expect(cites).to_have_count(3)
    sources = ask.locator(".sources li")
    expect(sources).to_have_count(3)
    # The owner's private lab notes are among the passages; anonymous visitors' are not.
    expect(ask.locator(".sources")).to_contain_text(SECRET)  # its title: its first line
    assert not serious_accessibility_violations(page)
    test_browser.ARTIFACTS.mkdir(exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=test_browser.ARTIFACTS / "ask-desktop.png", full_page=True)

    cites.first.click()
    expect(page).to_have_url(API_CITE)
    expect(page.locator(".chunk.cited")).to_have_count(1)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_model_output_is_text_and_unknown_citations_stay_text(
    tabs: Callable[[int], Tab], ingest: Any, llm: FakeLLM
) -> None:
    library(ingest)
    llm.answer = "<img src=x onerror=window.__pwned=1> Lava [1] and [7]."
    page = tabs(390).page
    page.goto("/?q=volcano+hazards")
    page.get_by_role("button", name="Ask").click()
    text = page.locator(".answer-text")
    expect(text).to_have_text("<img src=x onerror=window.__pwned=1> Lava [1] and [7].")
    expect(text.locator("a.cite")).to_have_count(1)
    expect(text.locator("img")).to_have_count(0)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not serious_accessibility_violations(page)
    test_browser.ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=test_browser.ARTIFACTS / "ask-phone.png", full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_without_javascript_the_ask_form_posts_and_shows_the_answer(
    browser: Browser,
    live_server: Any,
    ingest: Any,
    llm: FakeLLM,
) -> None:
    library(ingest)
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/?q=volcano+hazards")
        page.get_by_role("button", name="Ask").click()
        expect(page.locator(".answer-text")).to_have_text("The passages say so [1][2].")
        expect(page.locator(".answer-text a.cite")).to_have_count(2)
        expect(page.locator(".result").first).to_be_visible()
        assert page.url.endswith("/?q=volcano+hazards")
        assert llm.requests[-1]["body"]["stream"] is False
    finally:
        context.close()

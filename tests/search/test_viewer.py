"""Issue 14, point 14: the document page shows the text once (no doubled overlap between
consecutive chunks), the cited chunk whole with the query's words marked, a page of chunks
at a time (the cited one's page first), and its "Search" breadcrumb returns to the results
the reader came from, never anywhere else. The last test is the user's path in Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from documents import viewer
from documents.models import Document
from documents.viewer import own_spans, search_back_url
from tests.conftest import ingest_files
from tests.factories import CollectionFactory
from tests.search.test_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS,
    Tab,
    browser,
    serious_accessibility_violations,
    tabs,
)

# Numbered sentences: each must show exactly once on the page. About 40 tokens a sentence
# pair, so with 200-token chunks overlapping by 30 the document has several chunks.
FACTS = "\n\n".join(
    f"Fact {i:03d} says that basalt lava number {i} cools into dark rock near the vent. "
    f"Fact {i:03d} also notes that obsidian forms when lava {i} cools very fast."
    for i in range(60)
)


def test_overlap_goes_to_the_cited_chunk_and_otherwise_to_the_earlier_one() -> None:
    spans = [(0, 100), (80, 200), (180, 300)]
    assert own_spans(spans, reach=0, cited=None) == [(0, 100), (100, 200), (200, 300)]
    assert own_spans(spans, reach=0, cited=1) == [(0, 80), (80, 200), (200, 300)]
    assert own_spans(spans, reach=90, cited=None)[0] == (90, 100)  # the previous page's end


@pytest.mark.parametrize(
    ("back", "expected"),
    [
        ("q=lava+flows&mode=semantic&page=2&evil=1", "/?q=lava+flows&mode=semantic&page=2"),
        ("?q=%C3%BCber&collection=a&collection=b", "/?q=%C3%BCber&collection=a&collection=b"),
        ("//evil.example/?q=x", "/"),
        ("https://evil.example/?q=x", "/"),
        ("javascript:alert(1)", "/"),
        ("mode=keyword", "/"),  # no query: the plain search page
        ("", "/"),
    ],
)
def test_the_way_back_is_always_our_search_page(back: str, expected: str) -> None:
    assert search_back_url(back) == expected


@pytest.fixture
def facts(db: None, ingest: Any) -> Document:
    public = CollectionFactory.create(slug="rocks", name="Rocks", is_public=True)
    (document,) = ingest(public, {"facts.txt": FACTS})
    return document


def chunk_texts(page: str) -> str:
    """The document text as the page shows it (inside the chunks' text blocks)."""
    blocks = re.findall(r'<div class="chunk-text">(.*?)</div>', page, re.S)
    return re.sub(r"<[^>]+>", "", " ".join(blocks))


def test_the_text_shows_once_though_the_chunks_overlap(client: Client, facts: Document) -> None:
    chunks = list(facts.chunks.order_by("ordinal"))
    assert len(chunks) > 3
    assert any(b.char_start < a.char_end for a, b in zip(chunks, chunks[1:], strict=False))
    cited = chunks[2]
    page = client.get(f"/documents/{facts.pk}/", {"chunk": cited.pk}).content.decode()
    text = chunk_texts(page)
    for i in range(60):
        assert text.count(f"Fact {i:03d} says") == 1, i
        assert text.count(f"Fact {i:03d} also") == 1, i
    # The cited chunk is shown whole, in its own block.
    cited_block = re.search(rf'<li id="chunk-{cited.pk}" class="chunk cited".*?</li>', page, re.S)
    assert cited_block is not None
    shown = " ".join(re.sub(r"<[^>]+>", " ", cited_block.group()).split())
    assert " ".join(cited.text.split()) in shown


def test_query_words_are_marked_in_the_cited_chunk_only(client: Client, facts: Document) -> None:
    cited = facts.chunks.order_by("ordinal")[1]
    page = client.get(
        f"/documents/{facts.pk}/", {"chunk": str(cited.pk), "back": "q=obsidian&mode=semantic"}
    ).content.decode()
    cited_block = re.search(rf'<li id="chunk-{cited.pk}".*?</li>', page, re.S)
    assert cited_block is not None and "<mark>obsidian</mark>" in cited_block.group()
    assert page.count("<mark>") == cited_block.group().count("<mark>")
    assert 'href="/?q=obsidian&amp;mode=semantic" id="back-to-search"' in page


def test_long_documents_are_paged_at_the_cited_chunk(
    client: Client, facts: Document, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(viewer, "PAGE_CHUNKS", 2)
    chunks = list(facts.chunks.order_by("ordinal"))
    cited = chunks[2]  # on the second page
    url = f"/documents/{facts.pk}/"
    page = client.get(url, {"chunk": str(cited.pk), "back": "q=lava"}).content.decode()
    assert re.findall(r'<li id="chunk-(\d+)"', page) == [str(c.pk) for c in chunks[2:4]]
    assert 'class="chunk cited"' in page and "Page 2 of" in page
    assert f"?chunk={cited.pk}&amp;page=3&amp;back=q%3Dlava" in page  # next keeps both

    first = client.get(url, {"chunk": cited.pk, "page": 1}).content.decode()
    assert re.findall(r'<li id="chunk-(\d+)"', first) == [str(c.pk) for c in chunks[:2]]
    assert "The cited passage is on another page" in first
    # Across a page boundary the text still shows once.
    both = chunk_texts(first) + chunk_texts(client.get(url, {"page": 2}).content.decode())
    numbers = set(re.findall(r"Fact (\d{3}) says", " ".join(c.text for c in chunks[:4])))
    assert numbers and all(both.count(f"Fact {n} says") == 1 for n in numbers)
    for bad in ({"page": "999"}, {"page": "abc"}, {"page": "²"}, {"chunk": "x", "page": "-1"}):
        assert client.get(url, bad).status_code == 200, bad


def test_a_document_whose_text_does_not_match_its_chunks_still_shows_them(
    client: Client, facts: Document
) -> None:
    Document.objects.filter(pk=facts.pk).update(extracted_text="")  # stored before offsets
    page = client.get(f"/documents/{facts.pk}/").content.decode()
    assert "Fact 000 says" in chunk_texts(page)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_from_results_to_the_cited_passage_and_back(
    tabs: Callable[[int], Tab],  # noqa: F811 (the fixture imported above)
) -> None:
    public = CollectionFactory.create(slug="rocks", name="Rocks", is_public=True)
    ingest_files(public, {"facts.txt": FACTS, "tides.txt": "Tides follow the moon."})
    page = tabs(1280).page
    page.goto("/")
    page.locator("label.segment", has_text="Semantic").click()
    # Search as you type (static/js/search.js) swaps in the results and the URL.
    page.get_by_label("Search query").fill("obsidian forms when lava cools")
    results_url = re.compile(r"/\?q=obsidian\+forms\+when\+lava\+cools&mode=semantic$")
    expect(page).to_have_url(results_url, timeout=30_000)
    first = page.locator(".result").first
    expect(first.locator(".snippet mark").first).to_have_text(re.compile("obsidian|lava", re.I))
    expect(page.locator(".summary")).to_contain_text("ranked by meaning")
    first.get_by_role("link").click()

    cited = page.locator(".chunk.cited")
    expect(cited).to_have_count(1)
    expect(cited).to_be_in_viewport()
    expect(cited.locator("mark").first).to_have_text(re.compile("obsidian|lava|forms|cools", re.I))
    assert page.locator(".chunk:not(.cited) mark").count() == 0
    text = page.locator(".doc-text").inner_text()
    assert all(text.count(f"Fact {i:03d} says") == 1 for i in range(60))
    assert not serious_accessibility_violations(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "document-cited.png")

    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="Search").click()
    expect(page).to_have_url(results_url)
    expect(page.get_by_label("Search query")).to_have_value("obsidian forms when lava cools")
    expect(page.locator(".result").first).to_be_visible()

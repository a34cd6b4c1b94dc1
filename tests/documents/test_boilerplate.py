"""Boilerplate removal on real generated documentation pages (tests/fixtures/docpages:
Sphinx, Texinfo, DocBook and a landmark-based site): the navigation goes, the content
stays, and no page yields a junk chunk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from documents.chunking import chunk_document
from documents.extraction.extract import extract
from documents.extraction.types import ExtractedText
from documents.models import Chunk
from search.retrieval import SearchParams, search
from tests.factories import CollectionFactory

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "docpages"


def _extract(folder: str, name: str) -> ExtractedText:
    return extract((PAGES / folder / name).read_bytes(), filename=name)


# (folder, page, text that must stay, navigation text that must go). The navigation
# strings name the neighbouring pages or the generator's chrome; none occurs in the page's
# own content.
CASES = [
    (
        "sphinx-classic",
        "configure.html",
        ["Lantern reads lantern.toml", "placeholder page", "Glob patterns of notes"],
        ["Installing Lantern", "Deploying to a web server", "Previous topic", "Quick search",
         "Show Source", "Lantern 2.4 documentation", "Created using Sphinx", "¶"],
    ),
    (
        "sphinx-alabaster",
        "install.html",
        ["python3 -m venv", "rebuilds the cache", "Remove the virtual environment"],
        ["Configuring the site", "Deploying to a web server", "Related Topics", "Navigation",
         "Powered by", "Page source", "¶"],
    ),
    (
        "texinfo",
        "Installing-Kettle.html",
        ["./configure --prefix=/usr/local", "dialout", "Permissions"],
        ["Scheduling Boils", "Overview", "The Kettle Manual", "Next:", "Previous:", "Up:",
         "[Contents]", "¶"],
    ),
    (
        "docbook",
        "springs.html",
        ["rule of twelfths", "Neap tides fall near the quarter moons"],
        ["Reading a Tide Table", "Safety at Low Water", "Prev", "Next", "Home"],
    ),
    (
        "landmarks",
        "worm-bins.html",
        ["tiger worms", "Feed small amounts", "soil group"],
        ["Skip to content", "About the allotment society", "Search the handbook",
         "In this chapter", "Popular", "Making leaf mould", "Starting a compost heap",
         "Previous:", "CC BY-SA", "Contact us", "#"],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("folder", "page", "kept", "dropped"), CASES)
def test_navigation_goes_and_content_stays(
    settings: Any, folder: str, page: str, kept: list[str], dropped: list[str]
) -> None:
    text = _extract(folder, page).text
    for phrase in kept:
        assert phrase in text, f"{folder}/{page}: content lost: {phrase!r}"
    for phrase in dropped:
        assert phrase not in text, f"{folder}/{page}: navigation left: {phrase!r}"

    # The switch for before/after measurements brings the chrome back.
    settings.STRIP_BOILERPLATE = False
    before = _extract(folder, page).text
    assert any(phrase in before for phrase in dropped)


@pytest.mark.parametrize("folder", ["sphinx-classic", "sphinx-alabaster", "texinfo", "docbook"])
def test_headings_and_heading_paths_carry_no_permalink_sign(folder: str) -> None:
    for path in sorted((PAGES / folder).glob("*.html")):
        extracted = extract(path.read_bytes(), filename=path.name)
        for block in extracted.blocks:
            for heading in block.heading_path:
                assert not heading.endswith(("¶", "#")), (path.name, heading)


@pytest.mark.parametrize(
    "folder", ["sphinx-classic", "sphinx-alabaster", "texinfo", "docbook", "landmarks"]
)
def test_no_chunk_under_the_minimum_except_a_short_pages_only_one(folder: str) -> None:
    for path in sorted((PAGES / folder).glob("*.html")):
        extracted = extract(path.read_bytes(), filename=path.name)
        chunks = chunk_document(extracted, max_tokens=200, overlap_tokens=30, min_tokens=40)
        assert chunks, path.name
        if len(chunks) > 1:
            small = [c for c in chunks if c.token_count < 40]
            assert not small, (path.name, [extracted.text[c.start : c.end] for c in small])


def test_index_pages_keep_their_own_text(settings: Any) -> None:
    # The Sphinx index is mostly a toctree inside the content: it stays (it is the page).
    text = _extract("sphinx-classic", "index.html").text
    assert "turns a folder of Markdown notes" in text
    assert "Configuring the site" in text


# --- the rules, one by one ------------------------------------------------------------------


def _html_text(body: str) -> str:
    page = f"<html><head><title>T</title></head><body>{body}</body></html>"
    return extract(page.encode(), filename="page.html").text


def test_article_header_is_kept_and_page_header_dropped() -> None:
    text = _html_text(
        "<header><a href='/'>Site name</a></header>"
        "<article><header><h1>Real title</h1><p>By the author.</p></header>"
        "<p>Body text of the article.</p><footer>Article footnote.</footer></article>"
        "<footer>Site footer</footer>"
    )
    assert "Real title" in text and "By the author." in text and "Article footnote." in text
    assert "Site name" not in text and "Site footer" not in text


def test_roles_and_class_names_say_navigation() -> None:
    text = _html_text(
        "<div role='navigation'>Role nav</div><div role='banner'>Role banner</div>"
        "<div class='breadcrumbs'>Home / Docs</div><div id='sidebar'>Side</div>"
        "<div class='wy-breadcrumbs-aside'>Aside crumbs</div><ul class='menu'><li>Menu</li></ul>"
        "<div class='toc'>Contents list</div><p>Real paragraph.</p>"
    )
    assert text == "Real paragraph."


def test_a_content_paragraph_with_links_is_not_a_navigation_bar() -> None:
    text = _html_text(
        "<p>See <a href='a.html'>the installer</a> and <a href='b.html'>the next release"
        "</a> for details.</p>"
        "<p><a href='p.html'>Previous</a> | <a href='u.html'>Up</a> | <a href='n.html'>Next</a></p>"
        "<p>Next, stir the <a href='x.html'>sauce</a> and <a href='y.html'>serve</a>.</p>"
    )
    assert "See the installer and the next release for details." in text
    assert "Next, stir the sauce and serve." in text
    assert "Previous" not in text and "Up" not in text


def test_main_content_is_preferred_and_a_toc_inside_it_kept() -> None:
    text = _html_text(
        "<div class='top'>Welcome banner text that is no nav class.</div>"
        "<main><h1>Guide</h1><div class='toc'><a href='#a'>Part A</a></div>"
        "<header><p>Intro inside main.</p></header><p>Guide body.</p></main>"
        "<div>Unrelated promo after main.</div>"
    )
    assert "Welcome banner" not in text and "Unrelated promo" not in text
    assert "Part A" in text and "Intro inside main." in text and "Guide body." in text


def test_an_empty_main_falls_back_to_the_whole_page() -> None:
    text = _html_text("<main></main><div><p>Rendered outside main.</p></div>")
    assert text == "Rendered outside main."


def test_skip_links_and_permalinks_go_but_ordinary_anchors_stay() -> None:
    text = _html_text(
        "<a href='#content'>Skip to main content</a>"
        "<h2 id='x'>Setup<a class='headerlink' href='#x'>¶</a></h2>"
        "<h2 id='y'>Usage <a href='#y'>#</a></h2>"
        "<p>Read <a href='#y'>the usage section</a> first.</p>"
    )
    assert text == "Setup\n\nUsage\n\nRead the usage section first."


# --- end to end: a footer naming the next page no longer makes the page match it ------------


@pytest.mark.parametrize("strip", [True, False])
def test_a_footer_naming_the_next_page_does_not_match_its_title(
    db: None, ingest: Any, settings: Any, strip: bool
) -> None:
    settings.STRIP_BOILERPLATE = strip
    collection = CollectionFactory.create(slug="tides")
    names = ("springs.html", "safety.html")
    documents = ingest(collection, {n: (PAGES / "docbook" / n).read_bytes() for n in names})
    assert all(d.status == "ready" for d in documents), [d.error for d in documents]
    springs = next(d for d in documents if d.source_name == "springs.html")
    footer = any("Safety at Low Water" in c.text for c in Chunk.objects.filter(document=springs))
    assert footer is not strip

    query = SearchParams(query='"Safety at Low Water"', mode="keyword")
    found = [r.source_name for r in search(query, user=None, full_access=True).results]
    # Before: the page about springs and neaps matched the next chapter's title.
    assert sorted(set(found)) == (["safety.html"] if strip else ["safety.html", "springs.html"])

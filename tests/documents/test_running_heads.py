"""Running headers, footers and page numbers of PDFs (documents/extraction/running_heads.py),
on PDFs drawn with reportlab, through extraction and the whole ingestion."""

from __future__ import annotations

import io
from typing import Any

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from documents.extraction.extract import extract
from documents.extraction.running_heads import head_key, running_heads, without_running_heads
from documents.models import Chunk
from search.retrieval import SearchParams, search
from tests.factories import CollectionFactory

FRUITS = ["apricot", "blackcurrant", "cherry", "damson", "elderberry", "fig", "gooseberry"]


def _body(page: int) -> list[str]:
    fruit = FRUITS[page - 1]
    return [
        f"The orchard survey counted {fruit} trees in the north field this spring.",
        f"Most {fruit} trees were planted before the war and need hard pruning.",
        f"Yields of {fruit} rose by a third after the new irrigation was laid.",
    ]


def make_report(pages: int, *, header: str, footer: str, alternate: str | None = None) -> bytes:
    """A report whose pages carry a header (``alternate`` on even pages) and a footer with
    the page number, drawn around three lines of text about one fruit per page. The footer
    is drawn first and the header last, as some producers do: order must not matter."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    width, height = A4
    for page in range(1, pages + 1):
        pdf.setFont("Helvetica", 9)
        pdf.drawCentredString(width / 2, 30, footer.format(page=page, pages=pages))
        pdf.setFont("Helvetica", 11)
        for line, text in enumerate(_body(page)):
            pdf.drawString(72, height - 120 - 16 * line, text)
        pdf.setFont("Helvetica", 9)
        head = alternate if alternate is not None and page % 2 == 0 else header
        pdf.drawString(72, height - 40, head)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@pytest.mark.parametrize(
    "footer", ["Page {page} of {pages}", "{page}", "- {page} -", "Chapter 2 · {page}"]
)
def test_headers_footers_and_page_numbers_are_dropped(footer: str) -> None:
    data = make_report(6, header="Acme Orchards Ltd - Annual Survey 2025", footer=footer)
    extracted = extract(data, filename="survey.pdf")
    assert "Acme Orchards" not in extracted.text
    for page in range(1, 7):
        assert footer.format(page=page, pages=6) not in extracted.text.split("\n")
        assert FRUITS[page - 1] in extracted.text
    # Every page's text is there, on its page.
    for block in extracted.blocks:
        fruit = next(f for f in FRUITS if f in extracted.text[block.start : block.end])
        assert block.page == FRUITS.index(fruit) + 1


def test_the_switch_keeps_them(settings: Any) -> None:
    settings.STRIP_BOILERPLATE = False
    data = make_report(4, header="Acme Orchards Ltd", footer="Page {page} of {pages}")
    text = extract(data, filename="survey.pdf").text
    assert text.count("Acme Orchards Ltd") == 4 and "Page 3 of 4" in text


def test_alternating_heads_of_facing_pages_are_dropped() -> None:
    data = make_report(
        7, header="The Orchard Book", footer="{page}", alternate="Part One: Stone Fruit"
    )
    text = extract(data, filename="book.pdf").text
    assert "The Orchard Book" not in text and "Stone Fruit" not in text
    assert all(fruit in text for fruit in FRUITS)


def test_two_pages_are_too_few_to_tell() -> None:
    data = make_report(2, header="Acme Orchards Ltd", footer="Page {page} of {pages}")
    text = extract(data, filename="survey.pdf").text
    assert "Acme Orchards Ltd" in text and "Page 2 of 2" in text


def test_repeated_text_in_the_middle_of_pages_and_one_line_pages_stay() -> None:
    words = [
        f"{fruit} {kind}"
        for kind in ("jam", "pie", "tart", "wine", "sorbet")
        for fruit in FRUITS[:4]
    ]
    texts = {
        n: "\n".join(
            [
                "Head",
                *words[5 * n - 5 : 5 * n - 3],
                "Repeated middle line",
                *words[5 * n - 3 : 5 * n],
                f"Foot {n}",
            ]
        )
        for n in range(1, 5)
    }
    heads = running_heads(texts)
    assert heads == {"head", "foot #"}
    stripped = without_running_heads(texts[2], heads)
    assert stripped == "\n".join([*words[5:7], "Repeated middle line", *words[7:10]])
    # A page of one line: that line is the page, even when every page has it.
    single = {n: f"Page {n} discusses photosynthesis." for n in range(1, 5)}
    assert running_heads(single) == frozenset()


def test_head_keys_mask_numbers() -> None:
    assert head_key("  Page 3  of 10 ") == head_key("page 4 of 10") == "page # of #"
    assert head_key("- xiv -") == head_key("- 12 -") == "- # -"
    assert head_key("civil") == "civil"  # a word, not a roman numeral
    assert head_key("x" * 200) == ""  # too long for a header


def test_citations_keep_their_pages_end_to_end(db: None, ingest: Any) -> None:
    collection = CollectionFactory.create(slug="orchard")
    data = make_report(6, header="Acme Orchards Ltd - Annual Survey 2025", footer="- {page} -")
    (document,) = ingest(collection, {"survey.pdf": data})
    assert document.status == "ready", document.error
    chunks = list(Chunk.objects.filter(document=document))
    for chunk in chunks:
        assert "Acme" not in chunk.text
        pages = [n for n in range(1, 7) if FRUITS[n - 1] in chunk.text]
        assert pages and (chunk.first_page, chunk.last_page) == (min(pages), max(pages))
    response = search(SearchParams(query="damson", mode="keyword"), user=None, full_access=True)
    assert response.results
    for hit in response.results:  # overlapping chunks may both hold page 4's text
        assert "damson" in hit.text
        assert hit.first_page is not None and hit.last_page is not None
        assert hit.first_page <= 4 <= hit.last_page

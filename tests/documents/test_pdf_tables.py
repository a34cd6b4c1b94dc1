"""Ruled tables in PDFs (issue 18): rows as table rows with the header in the context of
every chunk, no row also emitted as loose lines, page numbers those of the PDF."""

from __future__ import annotations

import functools
import io
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.pdfgen import canvas
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Table, TableStyle
from reportlab.platypus.flowables import Flowable

from documents.extraction import ExtractionError, extract
from documents.extraction.pdf_tables import candidate_pages
from search.retrieval import SearchParams, search
from tests.factories import CollectionFactory
from tests.robustness.test_properties import FLIPS, UNEXPECTED, _damage

HEADER = ["Part number", "Description", "Warehouse"]
HEADER_TEXT = " | ".join(HEADER)


def _pdf(story: list[Flowable]) -> bytes:
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, title="Inventory").build(story)
    return buffer.getvalue()


def _table(rows: list[list[str]], *, repeat_header: bool = True, grid: bool = True) -> Table:
    table = Table(rows, repeatRows=1 if repeat_header else 0)
    if grid:
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    return table


def _inventory(rows: int = 200, *, repeat_header: bool = True, grid: bool = True) -> bytes:
    styles = getSampleStyleSheet()
    data = [HEADER]
    data += [[f"P-{i:05d}", f"widget model {i}", f"Depot {i % 7}"] for i in range(1, rows + 1)]
    return _pdf(
        [
            Paragraph("Quarterly inventory report", styles["Title"]),
            Paragraph("The table below lists every part we stock.", styles["Normal"]),
            _table(data, repeat_header=repeat_header, grid=grid),
            Paragraph("Closing remarks come after the table.", styles["Normal"]),
        ]
    )


def _row_page(extracted: Any, value: str) -> int | None:
    (block,) = [b for b in extracted.blocks if value in extracted.text[b.start : b.end]]
    return block.page


def test_rows_become_table_rows_with_the_header_in_their_path_and_no_loose_copy() -> None:
    extracted = extract(_inventory(), filename="inventory.pdf")
    rows = [b for b in extracted.blocks if b.table_row]
    data_rows = [b for b in rows if extracted.text[b.start : b.end] != HEADER_TEXT]
    assert len(data_rows) == 200
    assert all(b.heading_path[-1] == HEADER_TEXT for b in data_rows)
    assert extracted.text.count("P-00150 | widget model 150 | Depot 3") == 1
    # No duplicate as loose lines: every occurrence of a part number is in a row block.
    for i in (1, 77, 150, 200):
        assert extracted.text.count(f"P-{i:05d}") == 1
    # The prose around the table is kept, in reading order.
    text = extracted.text
    assert text.index("every part we stock") < text.index("P-00001") < text.index("Closing")
    assert not any("Closing" in text[b.start : b.end] for b in rows)


def test_page_numbers_of_rows_are_the_pdfs() -> None:
    data = _inventory()
    extracted = extract(data, filename="inventory.pdf")
    assert extracted.page_count is not None and extracted.page_count >= 5
    assert _row_page(extracted, "P-00001 ") == 1
    assert _row_page(extracted, "P-00200 ") == extracted.page_count
    # Row 150's page is the page whose text layer holds it (pypdf, page by page).
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    expected = next(
        n for n, page in enumerate(reader.pages, 1) if "P-00150" in (page.extract_text() or "")
    )
    assert _row_page(extracted, "P-00150 ") == expected > 1


def test_a_table_over_a_page_break_without_a_repeated_header_keeps_its_header() -> None:
    extracted = extract(_inventory(repeat_header=False), filename="inventory.pdf")
    assert extracted.text.count(HEADER_TEXT) == 1
    rows = [b for b in extracted.blocks if b.table_row and b.heading_path]
    assert len(rows) == 200
    assert {b.heading_path[-1] for b in rows} == {HEADER_TEXT}
    assert len({b.page for b in rows}) > 1


def test_a_pdf_without_ruled_tables_is_read_as_before() -> None:
    styles = getSampleStyleSheet()
    data = _pdf(
        [Paragraph("Plain prose " * 50, styles["Normal"]), PageBreak()]
        + [Paragraph("More prose on page two.", styles["Normal"])]
    )
    assert candidate_pages(data, [1, 2]) == []
    extracted = extract(data, filename="prose.pdf")
    assert not any(b.table_row for b in extracted.blocks)
    # Aligned but unruled columns are not guessed into a table either.
    unruled = extract(_inventory(30, grid=False), filename="unruled.pdf")
    assert not any(b.table_row for b in unruled.blocks)
    assert "P-00030" in unruled.text


def test_the_row_limit_applies_to_pdf_tables(settings: Any) -> None:
    settings.EXTRACTION_MAX_ROWS = 50
    with pytest.raises(ExtractionError, match="too many table rows"):
        extract(_inventory(), filename="inventory.pdf")


def test_keyword_search_for_row_150_returns_a_chunk_with_the_column_names(
    db: None, ingest: Any
) -> None:
    collection = CollectionFactory.create(is_public=True)
    (document,) = ingest(collection, {"inventory.pdf": _inventory()})
    assert document.status == "ready", document.error
    response = search(SearchParams(query="P-00150", mode="keyword"), user=None)
    best = response.results[0]
    assert "P-00150 | widget model 150" in best.text
    chunk = document.chunks.get(pk=best.chunk_id)
    assert "Part number" in chunk.context and "Warehouse" in chunk.context
    assert document.extracted_text[chunk.char_start : chunk.char_end] == chunk.text
    # Found once: the row is not also indexed as loose lines in another chunk.
    assert document.chunks.filter(text__contains="P-00150").count() == 1
    assert chunk.first_page is not None and chunk.first_page > 1


@functools.cache
def _small_inventory() -> bytes:
    return _inventory(12)


@hypothesis_settings(max_examples=25, deadline=None)
@given(cut=st.integers(0, 10**6), flips=FLIPS, splice=st.binary(max_size=64))
def test_damaged_pdfs_with_tables_are_read_or_refused_with_a_reason(
    cut: int, flips: list[tuple[int, int]], splice: bytes
) -> None:
    data = _damage(_small_inventory(), cut, flips, splice)
    try:
        result = extract(data, filename="inventory.pdf")
    except ExtractionError as error:
        assert str(error).strip()
        assert not UNEXPECTED.match(str(error)), f"a reader failed unexpectedly: {error}"
        return
    assert "\n\n".join(result.text[b.start : b.end] for b in result.blocks) == result.text


CELL = st.text(
    alphabet=st.characters(whitelist_categories=("Lu", "Ll", "Nd"), max_codepoint=0x7F),
    min_size=1,
    max_size=12,
)


@hypothesis_settings(max_examples=15, deadline=None)
@given(
    header=st.lists(CELL, min_size=2, max_size=4, unique=True),
    body=st.lists(st.lists(CELL, min_size=4, max_size=4), min_size=1, max_size=8),
)
def test_any_ruled_table_comes_back_row_by_row(header: list[str], body: list[list[str]]) -> None:
    rows = [row[: len(header)] for row in body]
    extracted = extract(_pdf([_table([header, *rows])]), filename="t.pdf")
    blocks = [extracted.text[b.start : b.end] for b in extracted.blocks]
    assert blocks == [" | ".join(header)] + [" | ".join(row) for row in rows]
    assert all(b.table_row for b in extracted.blocks)
    assert all(b.heading_path == (" | ".join(header),) for b in extracted.blocks[1:])


def test_a_dense_grid_is_not_handed_to_pdfplumber() -> None:
    """100 x 100 crossing lines: pdfplumber would spend seconds on its 10,000 crossings
    for no table; the page is read by pypdf alone."""
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=(600, 600))
    page.drawString(10, 590, "A grid of many lines drawn over the page.")
    for i in range(100):
        position = 10 + 5.8 * i
        page.line(position, 10, position, 580)
        page.line(10, position, 590, position)
    page.showPage()
    page.save()
    data = buffer.getvalue()
    assert candidate_pages(data, [1]) == []
    extracted = extract(data, filename="grid.pdf")
    assert "A grid of many lines" in extracted.text
    assert not any(b.table_row for b in extracted.blocks)
    # A real table's lines cross a few hundred times and are still looked at.
    assert candidate_pages(_inventory(), [1]) == [1]

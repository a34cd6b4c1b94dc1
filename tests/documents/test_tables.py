"""Tables that stay tables (issue 18): rows kept whole, the header row carried in the
context of every chunk of rows, chunk text still an exact span of the document text."""

from __future__ import annotations

import io
from typing import Any

import openpyxl

from documents.chunk_text import chunk_text
from documents.chunking import chunk_document
from documents.extraction import extract
from search.retrieval import SearchParams, search
from tests.factories import CollectionFactory

HEADER = ["Name", "Department", "Employee ID", "Office"]


def _staff_xlsx(rows: int = 300) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Staff"
    sheet.append(HEADER)
    for i in range(1, rows + 1):
        # Full stops inside cells: a row must still never be cut at a "sentence".
        sheet.append([f"Person {i}", f"Dept {i % 7}", f"EMP-{i:05d}", f"Room {i}. Floor {i % 5}."])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_rows_are_never_split_and_every_chunk_of_rows_names_the_columns() -> None:
    extracted = extract(_staff_xlsx(), filename="staff.xlsx")
    chunks = chunk_document(extracted, max_tokens=120, overlap_tokens=20)
    rows = [b for b in extracted.blocks if b.table_row]
    assert len(rows) == 301  # the header row and 300 rows
    row_spans = {(b.start, b.end) for b in rows}
    header = " | ".join(HEADER)
    covered = 0
    for chunk in chunks:
        text = extracted.text[chunk.start : chunk.end]
        # Whole rows only: the chunk starts and ends on row boundaries (or the sheet heading).
        for part in text.split("\n\n"):
            start = extracted.text.index(part, chunk.start)
            assert (start, start + len(part)) in row_spans or part == "Staff", part
        if "EMP-" in text:
            covered += 1
            context = chunk_text(text=text, title="staff", heading_path=chunk.heading_path)
            assert header in text or header in context.context
            assert header in context.embedded or header in text
    assert covered >= 5  # the table really spans many chunks


def test_a_row_is_not_repeated_as_overlap() -> None:
    extracted = extract(_staff_xlsx(80), filename="staff.xlsx")
    chunks = chunk_document(extracted, max_tokens=100, overlap_tokens=40)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start >= before.end


def test_keyword_search_for_row_150_returns_a_chunk_with_the_column_names(
    db: None, ingest: Any
) -> None:
    collection = CollectionFactory.create(is_public=True)
    (document,) = ingest(collection, {"staff.xlsx": _staff_xlsx()})
    assert document.status == "ready", document.error
    response = search(SearchParams(query="EMP-00150", mode="keyword"), user=None)
    best = response.results[0]
    assert "EMP-00150" in best.text
    assert "Employee ID" in " ".join(best.heading_path) or "Employee ID" in best.text
    chunk = document.chunks.get(pk=best.chunk_id)
    assert "Employee ID" in chunk.context
    assert document.extracted_text[chunk.char_start : chunk.char_end] == chunk.text


def test_csv_rows_are_table_rows_with_the_header_in_context() -> None:
    data = "city;population;country\n" + "".join(f"Town{i};{i * 1000};Land\n" for i in range(200))
    extracted = extract(data.encode(), filename="towns.csv")
    assert extracted.mime_type == "text/csv"
    assert all(block.table_row for block in extracted.blocks)
    chunks = chunk_document(extracted, max_tokens=60, overlap_tokens=10)
    last = chunks[-1]
    assert last.heading_path[-1] == "city | population | country"
    assert extracted.text[last.start : last.end].startswith("Town")

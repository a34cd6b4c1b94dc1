"""Tables shown as tables (issue 18, point 3): the document viewer and the search page's
result cards turn a chunk's table rows back into an HTML <table>, escaped, with the
header carried in the heading path shown as the table's head."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest
from django.test import Client
from playwright.sync_api import expect

from documents.highlight import query_terms
from documents.models import Chunk
from documents.table_view import card_table, chunk_parts
from tests.conftest import ingest_files
from tests.factories import CollectionFactory
from tests.search.test_browser import (  # noqa: F401 (fixtures)
    ARTIFACTS,
    Tab,
    browser,
    serious_accessibility_violations,
    tabs,
)

HEADER = ["Name", "Department", "Employee ID", "Office"]
HEADER_TEXT = " | ".join(HEADER)
EVIL = "<script>window.__pwned=1</script>"


def _staff_xlsx(rows: int = 300) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Staff"
    sheet.append(HEADER)
    for i in range(1, rows + 1):
        office = EVIL if i == 7 else f"Room {i}"
        sheet.append([f"Person {i}", f"Dept {i % 7}", f"EMP-{i:05d}", office])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_rows_under_a_carried_header_become_a_table_with_that_header() -> None:
    text = "Person 8 | Dept 1 | EMP-00008 | Room 8\n\nPerson 9 | Dept 2 | EMP-00009 | <b>"
    (part,) = chunk_parts(text, ("Staff", HEADER_TEXT), frozenset({"emp"}))
    assert part.table is not None
    assert part.table.header == HEADER and part.table.header_repeated
    assert part.table.rows[1] == ["Person 9", "Dept 2", "<mark>EMP</mark>-00009", "&lt;b&gt;"]


def test_a_table_inside_prose_takes_its_first_row_as_header_and_keeps_the_prose() -> None:
    text = "Prices\n\nIntro para.\n\nFruit | Price\n\nApple | 3\n\nPear | 4\n\nAfter."
    parts = chunk_parts(text, ("Prices",))
    assert [p.lines for p in parts if p.table is None] == [["Prices"], ["Intro para."], ["After."]]
    (table,) = [p.table for p in parts if p.table is not None]
    assert table.header == ["Fruit", "Price"] and not table.header_repeated
    assert table.rows == [["Apple", "3"], ["Pear", "4"]]


def test_a_lone_line_with_a_bar_is_not_a_table() -> None:
    (part,) = chunk_parts("Home | About", ())
    assert part.table is None and part.lines == ["Home | About"]
    assert card_table("Home | About", (), frozenset()) is None


def test_a_card_whose_query_words_are_in_the_prose_keeps_its_text_snippet() -> None:
    text = "Prices\n\nApples are cheap this week.\n\nFruit | Price\n\nApple | 3\n\nPear | 4"
    assert card_table(text, ("Prices",), query_terms("cheap week")) is None
    table = card_table(text, ("Prices",), query_terms("pear"))
    assert table is not None and table.rows == [["<mark>Pear</mark>", "4"]]


def test_the_card_shows_the_rows_with_the_query_words() -> None:
    rows = "\n\n".join(f"Person {i} | Dept {i % 7} | EMP-{i:05d} | Room {i}" for i in range(1, 9))
    table = card_table(rows, ("Staff", HEADER_TEXT), query_terms("EMP-00005"))
    assert table is not None
    assert table.header == HEADER
    # Every row has "EMP"; only row 5 has both words.
    assert table.rows == [["Person 5", "Dept 5", "<mark>EMP</mark>-<mark>00005</mark>", "Room 5"]]
    assert table.rows_left_out == 7
    first = card_table(rows, ("Staff", HEADER_TEXT), query_terms("nothing here"))
    assert first is not None and [row[0] for row in first.rows] == [
        "Person 1",
        "Person 2",
        "Person 3",
    ]


def test_viewer_and_search_page_render_a_spreadsheet_chunk_as_a_table(
    client: Client, ingest: Any
) -> None:
    collection = CollectionFactory.create(is_public=True)
    (document,) = ingest(collection, {"staff.xlsx": _staff_xlsx()})
    assert document.status == "ready", document.error
    page = client.get("/", {"q": "EMP-00150", "mode": "keyword"}).content.decode()
    card = page[page.index('<li class="result">') :]
    card = card[: card.index("</li>")]
    assert re.search(r'<th scope="col">Employee ID</th>', card)
    assert "<td><mark>EMP</mark>-<mark>00150</mark></td>" in card
    chunk = Chunk.objects.get(document=document, text__contains="EMP-00007 |")
    viewer = client.get(f"/documents/{document.pk}/", {"chunk": chunk.pk}).content.decode()
    assert '<table class="chunk-table">' in viewer
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in viewer
    assert EVIL not in viewer  # escaped, never markup


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_spreadsheet_shows_as_a_table_on_the_page_and_in_the_viewer(
    tabs: Callable[[int], Tab],  # noqa: F811 (the fixture imported above)
) -> None:
    public = CollectionFactory.create(slug="staff", name="Staff", is_public=True)
    ingest_files(public, {"staff.xlsx": _staff_xlsx()})
    page = tabs(1280).page
    page.goto("/?q=EMP-00150&mode=keyword")
    card = page.locator(".result").first
    table = card.locator("table.chunk-table")
    expect(table).to_be_visible()
    expect(table.locator("thead th")).to_have_text(HEADER)
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table.locator("tbody tr td").nth(2)).to_have_text("EMP-00150")
    expect(table.locator("tbody mark")).to_have_text(["EMP", "00150"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "table-result.png")

    card.get_by_role("link").first.click()
    cited = page.locator(".chunk.cited")
    expect(cited).to_have_count(1)
    cited_table = cited.locator("table.chunk-table")
    expect(cited_table.locator("thead th")).to_have_text(HEADER)
    expect(cited_table.locator("tbody tr", has_text="EMP-00150")).to_have_count(1)
    expect(cited_table.locator("tr", has_text="EMP-00150").locator("mark")).to_have_text(
        ["EMP", "00150"]
    )
    # The row with markup in a cell shows the text, and no script ran.
    expect(page.locator("td", has_text="<script>")).to_have_count(1)
    assert page.evaluate("window.__pwned") is None
    assert not serious_accessibility_violations(page)
    cited.scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "table-viewer.png", full_page=False)

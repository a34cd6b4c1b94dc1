"""OpenDocument text, spreadsheets and presentations (.odt/.ods/.odp) with odfpy.

ODT: headings (text:h with their outline level) and paragraphs, tables as tables. ODS:
each sheet a section of rows. ODP: each slide (draw:page) a page, its title frame the
heading, speaker notes included. Repeated rows and cells (an empty sheet can declare a
million repeated rows) are expanded only when they hold text, and count against the
row budget. odfpy parses with expat, after archive.py refused any entity declaration.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from odf import teletype
from odf.namespaces import DCNS, DRAWNS, METANS, PRESENTATIONNS, TABLENS, TEXTNS
from odf.opendocument import load

from .archive import check_zip, corrupt
from .tables import RowBudget, table_segments
from .text import HeadingTracker, Parsed, Segment, one_line
from .types import ExtractionError

_MAX_COLUMNS = 200
_MAX_DEPTH = 50


def _name(node: Any) -> tuple[str, str] | None:
    return getattr(node, "qname", None)


def _attr(node: Any, ns: str, name: str) -> str:
    value = node.attributes.get((ns, name)) if hasattr(node, "attributes") else None
    return str(value) if value is not None else ""


def _repeat(node: Any, name: str) -> int:
    value = _attr(node, TABLENS, name)
    return int(value) if value.isdigit() else 1


def _cells(row: Any) -> list[str]:
    cells: list[str] = []
    for cell in row.childNodes:
        if _name(cell) not in ((TABLENS, "table-cell"), (TABLENS, "covered-table-cell")):
            continue
        text = teletype.extractText(cell)
        # Repeated empty cells pad a row to the sheet's width: only text is expanded.
        count = min(_repeat(cell, "number-columns-repeated"), _MAX_COLUMNS)
        cells.extend([text] * (count if text.strip() else 1))
        if len(cells) >= _MAX_COLUMNS:
            break
    return cells[:_MAX_COLUMNS]


def _rows(table: Any, depth: int = 0) -> Iterator[list[str]]:
    """Rows in order, looking into header-row and row-group wrappers."""
    for child in table.childNodes:
        name = _name(child)
        if name == (TABLENS, "table-row"):
            cells = _cells(child)
            if any(cell.strip() for cell in cells):
                for _ in range(_repeat(child, "number-rows-repeated")):
                    yield cells
        elif name is not None and name[0] == TABLENS and depth < _MAX_DEPTH:
            if name[1] in ("table-header-rows", "table-rows", "table-row-group"):
                yield from _rows(child, depth + 1)


class _Walker:
    def __init__(self, budget: RowBudget) -> None:
        self.parsed = Parsed()
        self.headings = HeadingTracker()
        self.budget = budget

    def add(self, text: str, page: int | None = None) -> None:
        self.parsed.segments.append(Segment(text, page=page, heading_path=self.headings.path))

    def heading(self, text: str, level: int, page: int | None = None) -> None:
        text = one_line(text)
        if text:
            path = self.headings.enter(level, text)
            segment = Segment(text, page=page, heading_path=path, is_heading=True)
            self.parsed.segments.append(segment)

    def table(self, node: Any, page: int | None = None) -> None:
        path = self.headings.path
        segments = table_segments(_rows(node), heading_path=path, page=page, budget=self.budget)
        self.parsed.segments.extend(segments)

    def walk(self, node: Any, page: int | None = None, depth: int = 0) -> None:
        """Text blocks in document order; lists, sections and frames are looked into."""
        for child in node.childNodes:
            name = _name(child)
            if name == (TEXTNS, "h"):
                level = _attr(child, TEXTNS, "outline-level")
                depth_of = int(level) if level.isdigit() else 1
                self.heading(teletype.extractText(child), depth_of, page)
            elif name == (TEXTNS, "p"):
                self.add(teletype.extractText(child), page)
            elif name == (TABLENS, "table"):
                self.table(child, page)
            elif name is not None and depth < _MAX_DEPTH and name[0] in (TEXTNS, DRAWNS):
                self.walk(child, page, depth + 1)  # lists, sections, frames, text boxes


def _slides(walker: _Walker, body: Any) -> int:
    pages = [node for node in body.childNodes if _name(node) == (DRAWNS, "page")]
    if len(pages) > settings.EXTRACTION_MAX_SLIDES:
        raise ExtractionError(f"too many slides: {len(pages)} (EXTRACTION_MAX_SLIDES)")
    for number, slide in enumerate(pages, start=1):
        walker.headings = HeadingTracker()
        for frame in slide.childNodes:
            if _attr(frame, PRESENTATIONNS, "class") == "title":
                walker.heading(teletype.extractText(frame), 1, number)
        for frame in slide.childNodes:
            if _name(frame) == (PRESENTATIONNS, "notes"):
                if notes := teletype.extractText(frame).strip():
                    walker.add(f"Notes: {notes}", number)
            elif _attr(frame, PRESENTATIONNS, "class") != "title":
                walker.walk(frame, number)
    return len(pages)


def _sheets(walker: _Walker, body: Any) -> None:
    sheets = [node for node in body.childNodes if _name(node) == (TABLENS, "table")]
    if len(sheets) > settings.EXTRACTION_MAX_SHEETS:
        raise ExtractionError(f"too many sheets: {len(sheets)} (EXTRACTION_MAX_SHEETS)")
    for sheet in sheets:
        walker.headings = HeadingTracker()
        walker.heading(_attr(sheet, TABLENS, "name") or "Sheet", 1)
        walker.table(sheet)


_META_KEYS = {
    (DCNS, "title"): "title",
    (DCNS, "creator"): "author",
    (METANS, "initial-creator"): "author",
    (METANS, "creation-date"): "created",
    (DCNS, "date"): "modified",
}


def _metadata(document: Any, parsed: Parsed) -> None:
    found: dict[str, str] = {}
    for node in document.meta.childNodes:
        name = _name(node)
        key = _META_KEYS.get(name) if name else None
        if key and key not in found and (value := one_line(teletype.extractText(node))):
            found[key] = value
    parsed.title = found.pop("title", None)
    parsed.metadata = found


def parse_odf(data: bytes) -> Parsed:
    check_zip(data, label="OpenDocument file", required="content.xml")
    try:
        document = load(io.BytesIO(data))
    except Exception as exc:  # odfpy, zipfile and the SAX parser raise many types
        raise corrupt("OpenDocument file", exc) from exc
    walker = _Walker(RowBudget())
    body = document.body
    for part in body.childNodes:
        name = _name(part)
        if name == ("urn:oasis:names:tc:opendocument:xmlns:office:1.0", "presentation"):
            walker.parsed.page_count = _slides(walker, part)
        elif name == ("urn:oasis:names:tc:opendocument:xmlns:office:1.0", "spreadsheet"):
            _sheets(walker, part)
        else:
            walker.walk(part)
    _metadata(document, walker.parsed)
    return walker.parsed

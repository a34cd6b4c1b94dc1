"""Ruled tables in PDFs with a text layer, found with pdfplumber (MIT, on pdfminer.six) and
handed to tables.py like the tables of every other format: one block per row, the header
row carried in the heading path of the rows below it.

Only *ruled* tables are looked for (pdfplumber's "lines" strategy: a grid drawn with
lines or rectangles). Its "text" strategy guesses columns from aligned words and turns
ordinary two-column layouts and lists into tables; a wrong table is worse than none.

pdfminer is pure Python, about 0.08 s for a page of table, too slow to run on every page.
PDFium (C, already used to render scans) counts each page's path segments first: a page
without at least a few drawn lines cannot hold a ruled table and is left to pypdf alone,
so a PDF of prose pays only the count (about 5 ms a page). A page with more path segments
than MAX_PATH_SEGMENTS, or whose horizontal and vertical lines cross more than
MAX_CROSSINGS times, is a drawing, chart or hostile grid, not a table, and is not handed
to pdfminer either: that bounds pdfplumber's time on a page.

For a page with tables, its text outside them comes from pdfplumber too (not from
pypdf), band by band from top to bottom, so the reading order is kept and a table's text
is never also emitted as loose lines. Anything pdfplumber fails on leaves the page to
pypdf: a table is a nicety, the text is not.
"""

from __future__ import annotations

import ctypes
import io
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pdfplumber
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from .tables import RowBudget, row_text, table_segments
from .text import Segment, clean, paragraphs
from .types import ExtractionError

logger = logging.getLogger(__name__)

# A grid of two columns and two rows is 3 + 3 lines: 12 segments (a move and a line each).
MIN_PATH_SEGMENTS = 12
MAX_PATH_SEGMENTS = 20_000
MAX_CROSSINGS = 5_000
# A table that starts this near the top of a page, with the column count of a table that
# ended this near the bottom of the page before, continues it (rows without a repeated
# header row get the previous page's header).
_TOP_SHARE = 0.25
_BOTTOM_SHARE = 0.25
_SETTINGS = {"vertical_strategy": "lines", "horizontal_strategy": "lines"}


@dataclass(frozen=True)
class _Table:
    bbox: tuple[float, float, float, float]  # x0, top, x1, bottom (pdfplumber's)
    rows: list[list[str | None]]


@dataclass
class _Carry:
    """The last table of the previous page, for a table that runs over a page break."""

    header: str = ""
    columns: int = 0
    page: int = 0
    at_bottom: bool = False


def candidate_pages(data: bytes, numbers: Iterable[int]) -> list[int]:
    """The pages among ``numbers`` whose drawing could be a ruled table (see above)."""
    wanted = sorted(set(numbers))
    if not wanted:
        return []
    try:
        document = pdfium.PdfDocument(data)
    except Exception:  # PdfiumError: pypdf read it, so its text stays; no tables
        return []
    try:
        return [n for n in wanted if MIN_PATH_SEGMENTS <= _path_segments(document, n)]
    finally:
        document.close()


def _path_segments(document: pdfium.PdfDocument, number: int) -> int:
    """The page's path segments, or 0 when its drawing is no table's: over
    MAX_PATH_SEGMENTS, or a grid of more than MAX_CROSSINGS crossings (pdfplumber's cost
    grows with the crossings of horizontal and vertical lines: a 100 x 100 grid takes
    it 7 s; a real table of 80 rows and 20 columns has 1,600)."""
    try:
        page = document[number - 1]
    except Exception:
        return 0
    try:
        total = 0
        rows: set[int] = set()
        columns: set[int] = set()
        for obj in page.get_objects():  # form XObjects are descended into
            if obj.type != pdfium_c.FPDF_PAGEOBJ_PATH:
                continue
            total += max(pdfium_c.FPDFPath_CountSegments(obj.raw), 0)
            if total > MAX_PATH_SEGMENTS:
                return 0  # a drawing, not a table
            _lines(obj, rows, columns)
        return total if len(rows) * len(columns) <= MAX_CROSSINGS else 0
    except Exception:
        return 0
    finally:
        page.close()


def _lines(obj: Any, rows: set[int], columns: set[int]) -> None:
    """Adds the positions (in whole points) of the path's horizontal and vertical lines."""
    a, b, c, d, e, f = obj.get_matrix().get()
    x, y = ctypes.c_float(), ctypes.c_float()
    previous: tuple[float, float] | None = None
    for index in range(pdfium_c.FPDFPath_CountSegments(obj.raw)):
        segment = pdfium_c.FPDFPath_GetPathSegment(obj.raw, index)
        if not pdfium_c.FPDFPathSegment_GetPoint(segment, ctypes.byref(x), ctypes.byref(y)):
            continue
        point = (a * x.value + c * y.value + e, b * x.value + d * y.value + f)
        kind = pdfium_c.FPDFPathSegment_GetType(segment)
        if previous is not None and kind == pdfium_c.FPDF_SEGMENT_LINETO:
            if abs(point[1] - previous[1]) < 0.5:
                rows.add(round(point[1]))
            elif abs(point[0] - previous[0]) < 0.5:
                columns.add(round(point[0]))
        previous = point


def table_pages(
    data: bytes, numbers: Iterable[int], *, budget: RowBudget | None = None
) -> dict[int, list[Segment]]:
    """{page number: the page's segments in reading order} for the pages among
    ``numbers`` that hold ruled tables; other pages are left out (pypdf reads them).
    Raises ExtractionError only when the tables exceed the row limit."""
    pages = candidate_pages(data, numbers)
    if not pages:
        return {}
    budget = budget if budget is not None else RowBudget()
    found: dict[int, list[Segment]] = {}
    carry = _Carry()
    try:
        pdf = pdfplumber.open(io.BytesIO(data))
    except Exception as exc:
        logger.warning("pdfplumber cannot open the PDF; no tables: %s", exc)
        return {}
    try:
        for number in pages:
            try:
                segments = _page_segments(pdf.pages[number - 1], number, carry, budget)
            except ExtractionError:
                raise
            except Exception as exc:  # pdfminer on a damaged page: pypdf keeps it
                logger.warning("PDF page %d: table detection failed: %s", number, exc)
                continue
            if segments is not None:
                found[number] = segments
    finally:
        # Not `with pdf`: closing walks every page again, and on a damaged file that
        # raises pdfminer's errors after the work is done (found by the fuzz test).
        try:
            pdf.close()
        except Exception as exc:
            logger.warning("pdfplumber could not close a damaged PDF: %s", exc)
    return found


def _page_segments(
    page: Any, number: int, carry: _Carry, budget: RowBudget
) -> list[Segment] | None:
    tables = [
        _Table(tuple(table.bbox), table.extract())
        for table in page.find_tables(table_settings=_SETTINGS)
    ]
    tables = [t for t in tables if _is_table(t.rows)]
    if not tables:
        return None
    tables.sort(key=lambda t: (t.bbox[1], t.bbox[0]))
    boxes = [t.bbox for t in tables]
    outside = page.filter(lambda obj: not any(_inside(obj, box) for box in boxes))
    segments: list[Segment] = []
    top = 0.0
    for index, table in enumerate(tables):
        segments += _text(outside, top, table.bbox[1], number)
        header = _continued_header(table, page, number, carry, first=index == 0 and not segments)
        segments += table_segments(table.rows, page=number, budget=budget, header=header)
        # Text beside the table (a caption in the margin) follows the table.
        segments += _text(outside, table.bbox[1], table.bbox[3], number)
        top = max(top, table.bbox[3])
        _remember(carry, table, page, number, header or _first_row(table))
    segments += _text(outside, top, float(page.height), number)
    return segments


def _is_table(rows: Sequence[Sequence[object]]) -> bool:
    """Two rows of two columns with text, at least: a single ruled box is a frame."""
    filled = [row for row in rows if sum(bool(cell and str(cell).strip()) for cell in row) > 0]
    return len(filled) >= 2 and max((len(row) for row in rows), default=0) >= 2


def _inside(obj: dict[str, Any], box: tuple[float, float, float, float]) -> bool:
    """A character (or other object) whose centre lies in the table's box."""
    x0, top, x1, bottom = box
    x = (float(obj.get("x0", 0)) + float(obj.get("x1", 0))) / 2
    y = (float(obj.get("top", 0)) + float(obj.get("bottom", 0))) / 2
    return x0 <= x <= x1 and top <= y <= bottom


def _text(page: Any, top: float, bottom: float, number: int) -> list[Segment]:
    if bottom - top < 1:
        return []
    band = page.crop((0, max(top, 0), float(page.width), min(bottom, float(page.height))))
    text = band.extract_text() or ""
    return [Segment(paragraph, page=number) for paragraph in paragraphs(clean(text))]


def _continued_header(
    table: _Table, page: Any, number: int, carry: _Carry, *, first: bool
) -> str | None:
    """The header of the previous page's table when this one continues it without
    repeating its header row; None when the table has its own header (its first row)."""
    if not (first and carry.at_bottom and carry.page == number - 1):
        return None
    if table.bbox[1] > float(page.height) * _TOP_SHARE:
        return None
    if max(len(row) for row in table.rows) != carry.columns:
        return None
    return None if _first_row(table) == carry.header else carry.header


def _remember(carry: _Carry, table: _Table, page: Any, number: int, header: str) -> None:
    carry.header = header
    carry.columns = max(len(row) for row in table.rows)
    carry.page = number
    carry.at_bottom = table.bbox[3] >= float(page.height) * (1 - _BOTTOM_SHARE)


def _first_row(table: _Table) -> str:
    return next((text for text in map(row_text, table.rows) if text), "")

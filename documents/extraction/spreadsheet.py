"""Spreadsheets: XLSX with openpyxl, CSV/TSV with the csv module. Each sheet is a section
headed by its name; its rows are a table (documents/extraction/tables.py).

openpyxl reads the workbook in read-only mode (rows streamed, not a cell object per cell
kept) and with cached values only: formulas are never evaluated and macros never run.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import openpyxl

from .archive import check_zip, corrupt
from .tables import RowBudget, table_segments
from .text import Parsed, Segment, decode_text, one_line
from .types import ExtractionError

# A row of a hostile or broken sheet can claim 16,384 columns; nobody reads past this.
MAX_COLUMNS = 200


def _sheet_limit(count: int) -> None:
    from django.conf import settings

    if count > settings.EXTRACTION_MAX_SHEETS:
        raise ExtractionError(
            f"too many sheets: {count} (at most {settings.EXTRACTION_MAX_SHEETS}, "
            "EXTRACTION_MAX_SHEETS)"
        )


def _xlsx_rows(sheet: Any) -> Iterator[tuple[object, ...]]:
    yield from sheet.iter_rows(values_only=True, max_col=MAX_COLUMNS)


def parse_xlsx(data: bytes) -> Parsed:
    check_zip(data, label="XLSX", required="xl/workbook.xml")
    try:
        workbook = openpyxl.load_workbook(
            io.BytesIO(data), read_only=True, data_only=True, keep_links=False
        )
    except Exception as exc:  # openpyxl, zipfile and the XML parser raise many types
        raise corrupt("XLSX", exc) from exc
    parsed = Parsed()
    budget = RowBudget()
    try:
        _sheet_limit(len(workbook.worksheets))
        for sheet in workbook.worksheets:
            name = one_line(str(sheet.title)) or "Sheet"
            parsed.segments.append(Segment(name, heading_path=(name,), is_heading=True))
            parsed.segments.extend(
                table_segments(_xlsx_rows(sheet), heading_path=(name,), budget=budget)
            )
        parsed.title = one_line(workbook.properties.title or "") or None
        _metadata(parsed, workbook)
    except ExtractionError:
        raise
    except Exception as exc:  # read-only sheets are parsed lazily, while iterating
        raise corrupt("XLSX", exc) from exc
    finally:
        workbook.close()
    return parsed


def _metadata(parsed: Parsed, workbook: openpyxl.Workbook) -> None:
    """Author and date found in the file (extract.py moves them to ExtractedText.metadata)."""
    props = workbook.properties
    found = {"author": props.creator, "created": props.created, "modified": props.modified}
    parsed.metadata = {key: str(value) for key, value in found.items() if value}


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def parse_csv(data: bytes) -> Parsed:
    text = decode_text(data)
    dialect = _dialect(text[:8192])
    csv.field_size_limit(1024 * 1024)  # a cell past 1 MB is not a table cell
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    parsed = Parsed()
    try:
        rows = ([*row[:MAX_COLUMNS]] for row in reader)
        parsed.segments.extend(table_segments(rows, budget=RowBudget()))
    except csv.Error as exc:
        raise ExtractionError(f"corrupt CSV: {exc}") from exc
    return parsed

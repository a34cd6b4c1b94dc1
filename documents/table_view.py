"""Table rows shown as tables: the document viewer's chunks and the search page's result
cards turn the rows of a chunk back into an HTML table.

The rows are found in the chunk's own text (documents/extraction/tables.py writes every
row as one line, its cells joined by " | ", a block of its own), so nothing beyond the
chunk's text and heading path is stored and the text stays the exact span citations
point at. A chunk that continues a table does not hold its header row: that is the
last entry of its heading path, shown as the table's head and marked as repeated.

Every cell is escaped (highlight() escapes everything but its own <mark>s).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils.safestring import SafeString

from documents.extraction.tables import CELL_SEPARATOR
from documents.highlight import highlight, term_positions

_BLANK_LINE = re.compile(r"\n\s*\n")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s")
# Rows shown in a result card: the ones with the query's words, else the first ones.
CARD_ROWS = 3


@dataclass(frozen=True)
class TableView:
    header: list[SafeString]  # empty: the table has no header row (a single-row table)
    rows: list[list[SafeString]]
    # The header is the table's, carried in the heading path, not text of this chunk.
    header_repeated: bool = False
    rows_left_out: int = 0  # a result card shows a few rows only
    columns: int = field(init=False)

    def __post_init__(self) -> None:
        width = max([len(self.header), *(len(row) for row in self.rows)], default=0)
        object.__setattr__(self, "columns", width)


@dataclass(frozen=True)
class Part:
    """A paragraph (its lines, escaped) or a table, in the chunk's order."""

    lines: list[SafeString] = field(default_factory=list)
    table: TableView | None = None


def is_row(paragraph: str) -> bool:
    """A table row as tables.py writes it: one line with at least two cells."""
    return "\n" not in paragraph.strip() and CELL_SEPARATOR in paragraph


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().split(CELL_SEPARATOR)]


def path_header(heading_path: Sequence[str]) -> list[str] | None:
    """The header row a chunk of rows carries as the last entry of its heading path."""
    if heading_path and CELL_SEPARATOR in heading_path[-1]:
        return cells(heading_path[-1])
    return None


def _groups(paragraphs: list[str]) -> list[tuple[bool, list[str]]]:
    """Consecutive paragraphs grouped into (is a run of rows, paragraphs)."""
    groups: list[tuple[bool, list[str]]] = []
    for paragraph in paragraphs:
        row = is_row(paragraph)
        if groups and groups[-1][0] == row:
            groups[-1][1].append(paragraph)
        else:
            groups.append((row, [paragraph]))
    return groups


def _table(rows: list[str], header: list[str] | None, terms: frozenset[str]) -> TableView | None:
    """Rows as a table: under ``header`` (from the heading path) when given, else under
    their first row. A lone row under no header stays a paragraph ("Home | About")."""
    repeated = header is not None
    if header is None:
        if len(rows) < 2:
            return None
        header, rows = cells(rows[0]), rows[1:]
    return TableView(
        header=[highlight(cell, terms) for cell in header],
        rows=[[highlight(cell, terms) for cell in cells(row)] for row in rows],
        header_repeated=repeated,
    )


def text_paragraphs(text: str) -> list[list[str]]:
    """Paragraphs (split at blank lines), each a list of lines: a line that starts a list
    item keeps its own line; other hard line breaks (wrapped text from PDFs and Markdown)
    are joined so the passage reads as prose."""
    paragraphs = []
    for block in _BLANK_LINE.split(text):
        lines: list[str] = []
        for line in block.splitlines():
            if not line.strip():
                continue
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            else:
                lines.append(line.strip())
        if lines:
            paragraphs.append(lines)
    return paragraphs


def chunk_parts(
    text: str, heading_path: Sequence[str], terms: frozenset[str] = frozenset()
) -> list[Part]:
    """The chunk's text as paragraphs and tables, in order, with ``terms`` marked."""
    paragraphs = [p for p in _BLANK_LINE.split(text) if p.strip()]
    continued = path_header(heading_path)
    parts: list[Part] = []
    for index, (rows, group) in enumerate(_groups(paragraphs)):
        table = _table(group, continued if index == 0 else None, terms) if rows else None
        if table is not None:
            parts.append(Part(table=table))
            continue
        for lines in text_paragraphs("\n\n".join(group)):
            parts.append(Part(lines=[highlight(line, terms) for line in lines]))
    return parts


def card_table(text: str, heading_path: Sequence[str], terms: frozenset[str]) -> TableView | None:
    """For a result card: the chunk's first table with only the (at most CARD_ROWS) rows
    with the most query terms; None when the chunk holds no table, or when the query's
    words are only in the chunk's prose (the text snippet shows those)."""
    paragraphs = [p for p in _BLANK_LINE.split(text) if p.strip()]
    groups = _groups(paragraphs)
    prose = any(not is_rows for is_rows, _ in groups)
    for index, (is_rows, rows) in enumerate(groups):
        header = path_header(heading_path) if index == 0 else None
        repeated = header is not None
        if not is_rows or (header is None and len(rows) < 2):
            continue
        if header is None:
            header, rows = cells(rows[0]), rows[1:]
        hits = [len({term for _, term in term_positions(row, terms)}) for row in rows]
        # The rows with the most distinct query words (every row may share one, "EMP"),
        # in the table's order; the first rows when no row has any.
        if prose and not any(hits):
            return None  # the words are in the prose around the table: the snippet shows it
        chosen = [i for i, count in enumerate(hits) if count == max(hits)][:CARD_ROWS]
        return TableView(
            header=[highlight(cell, terms) for cell in header],
            rows=[[highlight(cell, terms) for cell in cells(rows[i])] for i in chosen],
            header_repeated=repeated,
            rows_left_out=len(rows) - len(chosen),
        )
    return None

"""Tables that stay tables: every extractor that meets a table hands its rows here.

A row becomes one block, its cells joined by " | " on one line, so the chunker can keep
it whole. The first non-empty row is taken as the header; it is a block of its own and
also the last entry of the heading path of every row below it: the chunk's context (the
keyword index and the embedded header, documents/chunk_text.py) then carries the column
names, while the chunk's text stays an exact span of the document's text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings

from .text import Segment, one_line
from .types import ExtractionError

CELL_SEPARATOR = " | "
# A header row this long is not a header a reader could use; the context is cut anyway.
_MAX_HEADER_CHARS = 300


@dataclass(frozen=True, slots=True)
class RowSegment(Segment):
    """A table row: ``extract.assemble`` turns it into a Block with ``table_row=True``."""


def row_text(cells: Iterable[object]) -> str:
    """One line: the cells' text with whitespace collapsed, trailing empty cells dropped."""
    texts = ["" if cell is None else one_line(str(cell)) for cell in cells]
    while texts and not texts[-1]:
        texts.pop()
    return CELL_SEPARATOR.join(texts) if any(texts) else ""


class RowBudget:
    """Counts the rows of one document against TABLE_MAX_ROWS, so a spreadsheet of a
    million rows fails with a reason instead of filling the worker's memory."""

    def __init__(self) -> None:
        self.limit: int = settings.EXTRACTION_MAX_ROWS
        self.used = 0

    def take(self) -> None:
        self.used += 1
        if self.used > self.limit:
            raise ExtractionError(
                f"too many table rows: more than {self.limit} "
                "(EXTRACTION_MAX_ROWS; split the file or raise the limit)"
            )


def table_segments(
    rows: Iterable[Sequence[object]],
    *,
    heading_path: tuple[str, ...] = (),
    page: int | None = None,
    budget: RowBudget | None = None,
    header: str | None = None,
) -> list[Segment]:
    """The rows of one table as segments: the header row, then each data row with the
    header at the end of its heading path. Empty rows are skipped. ``header``: the table
    continues one whose header row came before (a PDF table over a page break), so every
    row here is a data row."""
    segments: list[Segment] = []
    for cells in rows:
        if budget is not None:
            budget.take()
        text = row_text(cells)
        if not text:
            continue
        if header is None:
            header = text
            segments.append(RowSegment(text, page=page, heading_path=heading_path))
            continue
        path = (*heading_path, header[:_MAX_HEADER_CHARS])
        segments.append(RowSegment(text, page=page, heading_path=path))
    return segments

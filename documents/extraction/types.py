"""The shape every extractor returns and the chunker consumes.

Kept apart from the extractors so the chunker can import it without pulling in
PDF or DOCX libraries.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class ExtractionError(Exception):
    """A file we cannot turn into text. The message is shown to the user as is."""


@dataclass(frozen=True)
class Block:
    """A structural unit of the extracted text: a heading or a paragraph.

    ``text[start:end]`` of the owning :class:`ExtractedText` is the block's text.
    Blocks are in reading order, do not overlap, and are separated in ``text``
    by a blank line ("\\n\\n").
    """

    start: int
    end: int
    page: int | None = None  # 1-based page number for paged formats (PDF)
    heading_path: tuple[str, ...] = ()  # enclosing headings, outermost first
    is_heading: bool = False
    # A row of a table (the header row included): packed whole, never cut between
    # sentences, and the table's header row is the last entry of ``heading_path`` of the
    # rows below it, so a chunk of rows 200-230 still names its columns (documents/tables).
    table_row: bool = False


@dataclass(frozen=True)
class Attachment:
    """A file carried inside another (an e-mail's attachment), ingested as its own
    document whose parent is the carrier."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class ExtractedText:
    text: str
    mime_type: str
    blocks: list[Block] = field(default_factory=list)
    title: str | None = None
    page_count: int | None = None
    # Found in the file: author, date, e-mail sender and recipients... (Document.metadata).
    metadata: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)

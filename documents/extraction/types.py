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


@dataclass(frozen=True)
class ExtractedText:
    text: str
    mime_type: str
    blocks: list[Block] = field(default_factory=list)
    title: str | None = None
    page_count: int | None = None

"""Token-aware chunking of extracted documents.

A chunk is a span ``extracted.text[start:end]`` of the ORIGINAL text, so citations can point
back into the document exactly. Chunks are measured in the embedding model's own wordpieces
(see :mod:`documents.tokenizer`) because the model silently drops everything past its limit.

How a document is cut, coarsest rule first:

1. Structure: a heading starts a new chunk and is kept with the content that follows it.
2. Within a section, whole paragraphs (blocks) are packed while they fit in ``max_tokens``.
   A table row is a block too (documents/extraction/tables.py): kept whole, never cut at a
   sentence, and never repeated as overlap; the rows' heading path ends with the table's
   header row, so every chunk of rows carries the column names in its context.
3. A paragraph that does not fit is cut at sentence boundaries.
4. A sentence that does not fit is cut at token boundaries, between words where possible.
5. No chunk is longer than ``max_tokens * MAX_CHARS_PER_TOKEN`` characters either: a word
   without spaces is one [UNK] token to the model however long it is, so a sentence over
   that cap is cut by characters first (at a space where there is one, else inside the
   word). Ordinary text never comes near the cap.

Consecutive chunks of one section share up to ``overlap_tokens`` tokens (trailing whole
sentences of the previous chunk, or its trailing tokens when its last sentence is too long),
so a fact straddling a cut is still retrievable from one chunk. Overlap never crosses a heading.

Last, no junk chunks (``min_tokens``, CHUNK_MIN_TOKENS): a chunk under ``min_tokens`` tokens
joins a neighbour within the same section when the two fit ``max_tokens`` together: two
pieces of one section, a section and its subsection, or two subsections of one section (the
joined chunk's heading path is then the section they share); never two top-level sections,
and table rows only with rows of the same table. A chunk that is only headings joins its
neighbour whatever the sections. A short last piece that cannot join the full chunk before
it starts earlier instead (a longer overlap). A document that short is one chunk.

Everything is tokenised once, in batches; the exact count of every final slice is checked at
the end (tokenising a joined text can differ from the sum of its parts when a cut falls inside
a word) and any chunk over budget is shrunk.

The packing itself is in documents/packing.py, sentence boundaries in documents/sentences.py.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from documents.extraction.types import ExtractedText
from documents.packing import Chunker, Segment
from documents.sentences import paragraph_spans, sentence_spans, trim
from documents.tokenizer import SPECIAL_TOKENS, count_tokens, model_window

MIN_MAX_TOKENS = 16
# Leaves room for [CLS]/[SEP] and a short contextual header (title > headings) within the
# model's 256-token window.
DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30
# English prose averages four to five characters per token; twelve leaves room for long
# words, numbers and scripts the vocabulary splits finely, and still bounds a chunk of
# garbage (2,400 characters at 200 tokens).
MAX_CHARS_PER_TOKEN = 12


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk: ``extracted.text[start:end]`` (callers slice; no copy is kept here)."""

    start: int
    end: int
    first_page: int | None
    last_page: int | None
    heading_path: tuple[str, ...]
    token_count: int  # tokens of text[start:end], without [CLS]/[SEP]


def _own_heading_path(text: str, segment: Segment) -> tuple[str, ...]:
    """A block's heading path; for a heading, the path including the heading itself."""
    path = segment.heading_path
    if not segment.is_heading:
        return path
    title = " ".join(text[segment.start : segment.end].split())
    # Extractors may already include the heading in its own path: do not repeat it.
    if path and " ".join(path[-1].split()) == title:
        return path
    return (*path, title)


def _segments(extracted: ExtractedText) -> list[Segment]:
    """Trimmed, non-empty, ordered blocks, plus paragraphs for any text no block covers.

    The chunks must cover every non-whitespace character, so text outside the blocks (or all
    of it, when an extractor gave no blocks) is not dropped but split on blank lines.
    """
    text = extracted.text
    n = len(text)
    segments: list[Segment] = []

    def add_uncovered(start: int, end: int, page: int | None, path: tuple[str, ...]) -> None:
        for s, e in paragraph_spans(text, start, end):
            segments.append(Segment(s, e, page, path, False))

    covered = 0  # text[:covered] has been handed out
    previous: Segment | None = None
    for block in sorted(extracted.blocks, key=lambda b: (b.start, b.end)):
        start, end = max(block.start, covered, 0), min(block.end, n)
        if start >= end:
            continue
        # Normally the gap is just the "\n\n" between blocks: skip the regex for it.
        if start > covered and not text[covered:start].isspace():
            if previous is not None:
                add_uncovered(covered, start, previous.page, _own_heading_path(text, previous))
            else:
                add_uncovered(covered, start, block.page, ())
        covered = end
        s, e = trim(text, start, end)
        if s < e:
            path = tuple(block.heading_path)
            previous = Segment(s, e, block.page, path, block.is_heading, block.table_row)
            segments.append(previous)
    if covered < n:
        if previous is not None:
            add_uncovered(covered, n, previous.page, _own_heading_path(text, previous))
        else:
            add_uncovered(covered, n, None, ())
    return segments


def _validate(max_tokens: int, overlap_tokens: int) -> None:
    window = model_window()
    upper = window - SPECIAL_TOKENS
    if not isinstance(max_tokens, int) or not MIN_MAX_TOKENS <= max_tokens <= upper:
        raise ValueError(
            f"max_tokens must be an integer between {MIN_MAX_TOKENS} and {upper} (the model "
            f"reads {window} tokens including [CLS] and [SEP]); got {max_tokens!r}"
        )
    if not isinstance(overlap_tokens, int) or not 0 <= overlap_tokens < max_tokens // 2:
        raise ValueError(
            f"overlap_tokens must be an integer >= 0 and < max_tokens // 2 "
            f"({max_tokens // 2}); got {overlap_tokens!r}"
        )


def chunk_document(
    extracted: ExtractedText,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    min_tokens: int = 0,
) -> list[ChunkSpan]:
    """Cut an extracted document into chunks of at most ``max_tokens`` tokens (and
    ``max_tokens * MAX_CHARS_PER_TOKEN`` characters) each.

    See the module docstring for the rules. Chunks are in text order with strictly increasing
    starts, never start or end with whitespace, and together cover every non-whitespace
    character of ``extracted.text``. ``min_tokens`` (0: off) is at most ``max_tokens // 2``:
    a larger value is lowered to it, so a model with a small window still gets chunks.
    """
    _validate(max_tokens, overlap_tokens)
    if not isinstance(min_tokens, int) or min_tokens < 0:
        raise ValueError(f"min_tokens must be an integer >= 0; got {min_tokens!r}")
    text = extracted.text
    if not text or text.isspace():
        return []
    segments = _segments(extracted)
    chunker = Chunker(text, max_tokens, overlap_tokens, max_tokens * MAX_CHARS_PER_TOKEN)
    settled = chunker.settle(chunker.chunk(segments))

    starts = [seg.start for seg in segments]
    chunks: list[ChunkSpan] = []
    for draft, count in settled:
        start, end = draft.start, draft.end
        first = max(bisect_right(starts, start) - 1, 0)
        last = max(bisect_left(starts, end) - 1, first)
        # A chunk opening with a run of headings (H1 directly followed by H2) is about the
        # deepest of them: that is the path of the content it carries.
        lead = first
        while segments[lead].is_heading and lead < last and segments[lead + 1].is_heading:
            lead += 1
        pages = [seg.page for seg in segments[first : last + 1] if seg.page is not None]
        chunks.append(
            ChunkSpan(
                start=start,
                end=end,
                first_page=min(pages) if pages else None,
                last_page=max(pages) if pages else None,
                heading_path=_own_heading_path(text, segments[lead]),
                token_count=count,
            )
        )
    if min_tokens > 0:
        limits = _Limits(
            min(min_tokens, max_tokens // 2), max_tokens, max_tokens * MAX_CHARS_PER_TOKEN
        )
        chunks = _Joiner(text, segments, limits).run(chunks)
    return chunks


# --- no junk chunks -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    min_tokens: int
    max_tokens: int
    max_chars: int


@dataclass(frozen=True)
class _Piece:
    chunk: ChunkSpan
    lone: bool  # holds only headings
    rows: bool  # holds table rows


class _Joiner:
    """Joins each chunk under ``min_tokens`` (or holding only headings) to a neighbour of
    its section; see the module docstring. One pass, left to right: a short chunk joins the
    one before it or, failing that, the one after it. A short last piece of a section that
    cannot join (the packer filled the chunk before it) starts earlier instead, at a
    sentence or row of the chunk before: a longer overlap rather than a scrap."""

    def __init__(self, text: str, segments: list[Segment], limits: _Limits) -> None:
        self.text = text
        self.segments = segments
        self.starts = [seg.start for seg in segments]
        self.limits = limits

    def run(self, chunks: list[ChunkSpan]) -> list[ChunkSpan]:
        merged: list[_Piece] = []
        for chunk in chunks:
            piece = self._piece(chunk)
            if merged and self._may_join(merged[-1], piece):
                joined = self._joined(merged[-1], piece)
                if joined is not None:
                    merged[-1] = joined
                    continue
                if chunk.token_count < self.limits.min_tokens and not piece.lone:
                    piece = self._extended(merged[-1].chunk, piece) or piece
            merged.append(piece)
        return [piece.chunk for piece in merged]

    def _covered(self, start: int, end: int) -> list[Segment]:
        first = max(bisect_right(self.starts, start) - 1, 0)
        last = max(bisect_left(self.starts, end) - 1, first)
        return self.segments[first : last + 1]

    def _piece(self, chunk: ChunkSpan) -> _Piece:
        covered = self._covered(chunk.start, chunk.end)
        lone = all(seg.is_heading for seg in covered)
        return _Piece(chunk, lone, any(seg.table_row for seg in covered))

    def _may_join(self, before: _Piece, after: _Piece) -> bool:
        if before.lone or after.lone:
            return True  # a heading alone is never a chunk
        minimum = self.limits.min_tokens
        if before.chunk.token_count >= minimum and after.chunk.token_count >= minimum:
            return False
        outer, inner = before.chunk.heading_path, after.chunk.heading_path
        if outer == inner:
            return True
        # A table's rows keep their own path (it ends with the table's header row).
        if before.rows or after.rows:
            return False
        # Two parts of one section: a subsection and what encloses it, or two siblings.
        return bool(_common_path(outer, inner))

    def _joined(self, before: _Piece, after: _Piece) -> _Piece | None:
        if before.lone:  # headings before content: the chunk is about that content
            path = after.chunk.heading_path
        elif after.lone:
            path = before.chunk.heading_path
        else:
            path = _common_path(before.chunk.heading_path, after.chunk.heading_path)
        chunk = self._span(before.chunk.start, after.chunk.end, path)
        if chunk is None:
            return None
        return _Piece(chunk, before.lone and after.lone, before.rows or after.rows)

    def _span(self, start: int, end: int, path: tuple[str, ...]) -> ChunkSpan | None:
        """text[start:end] as a chunk, or None when it breaks the size limits."""
        if end - start > self.limits.max_chars:
            return None
        count = count_tokens(self.text[start:end])
        if count > self.limits.max_tokens:
            return None
        pages = [seg.page for seg in self._covered(start, end) if seg.page is not None]
        return ChunkSpan(
            start=start,
            end=end,
            first_page=min(pages) if pages else None,
            last_page=max(pages) if pages else None,
            heading_path=path,
            token_count=count,
        )

    def _extended(self, before: ChunkSpan, after: _Piece) -> _Piece | None:
        """``after`` starting at the latest sentence (or table row) of ``before`` that
        brings it to ``min_tokens``; None if none does within the limits."""
        path = after.chunk.heading_path
        if before.heading_path != path:
            return None
        for start in reversed(self._cut_points(before.start, after.chunk.start)):
            chunk = self._span(start, after.chunk.end, path)
            if chunk is None:
                return None  # starting earlier only makes it longer
            if chunk.token_count >= self.limits.min_tokens:
                return _Piece(chunk, False, after.rows)
        return None

    def _cut_points(self, start: int, end: int) -> list[int]:
        """Where a chunk may start in (start, end): sentence starts, row starts; never
        at a heading (it belongs to the chunk that begins with it)."""
        points: list[int] = []
        for seg in self._covered(start, end):
            if seg.is_heading or seg.start >= end:
                continue
            if seg.table_row:
                points.append(seg.start)
            else:
                s, e = max(seg.start, start), min(seg.end, end)
                points.extend(span[0] for span in sentence_spans(self.text, s, e))
        return [point for point in points if start < point < end][-_MAX_CUT_POINTS:]


def _common_path(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    common: list[str] = []
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        common.append(a)
    return tuple(common)


# Enough sentences back to reach any minimum from a scrap; bounds the token counting.
_MAX_CUT_POINTS = 24

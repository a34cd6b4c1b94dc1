"""Token-aware chunking of extracted documents.

A chunk is a span ``extracted.text[start:end]`` of the ORIGINAL text, so citations can point
back into the document exactly. Chunks are measured in the embedding model's own wordpieces
(see :mod:`documents.tokenizer`) because the model silently drops everything past its limit.

How a document is cut, coarsest rule first:

1. Structure: a heading starts a new chunk and is kept with the content that follows it.
2. Within a section, whole paragraphs (blocks) are packed while they fit in ``max_tokens``.
3. A paragraph that does not fit is cut at sentence boundaries.
4. A sentence that does not fit is cut at token boundaries, between words where possible.

Consecutive chunks of one section share up to ``overlap_tokens`` tokens (trailing whole
sentences of the previous chunk, or its trailing tokens when its last sentence is too long),
so a fact straddling a cut is still retrievable from one chunk. Overlap never crosses a heading.

Everything is tokenised once, in batches; the exact count of every final slice is checked at
the end (tokenising a joined text can differ from the sum of its parts when a cut falls inside
a word) and any chunk over budget is shrunk.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field, replace

from tokenizers import Encoding

from documents.extraction.types import ExtractedText
from documents.tokenizer import (
    MODEL_MAX_TOKENS,
    SPECIAL_TOKENS,
    count_tokens,
    count_tokens_batch,
    get_tokenizer,
)

MIN_MAX_TOKENS = 16
# Leaves room for [CLS]/[SEP] and a short contextual header (title > headings) within the
# model's 256-token window.
DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 30


@dataclass(frozen=True)
class ChunkSpan:
    """One chunk: ``extracted.text[start:end]`` (callers slice; no copy is kept here)."""

    start: int
    end: int
    first_page: int | None
    last_page: int | None
    heading_path: tuple[str, ...]
    token_count: int  # tokens of text[start:end], without [CLS]/[SEP]


# --- sentence splitting --------------------------------------------------------------------

# Deliberately simple (no nltk download, no model): a sentence ends at
#   * . ! ? … (plus closing quotes/brackets) followed by whitespace — accepted as a break only
#     when the next word starts with a capital, a digit or a caseless letter (checked in code,
#     because `re` has no Unicode case classes), which keeps "e.g. the" and "3.5 mm" together;
#   * CJK full stops, which are not followed by spaces;
#   * any line break: in extracted text these are list items, table rows, verse, PDF lines.
_SENTENCE_BREAK = re.compile(
    r"(?P<punct>[.!?\u2026]+[\"'\u201d\u2019)\]]*)(?P<space>\s+)"
    r"|(?P<cjk>[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019\uff09]*)"
    r"|[^\S\n]*\n\s*"
)
_OPENERS = frozenset("\"'\u201c\u2018([")
# Paragraph breaks, for text that comes without blocks (or lies outside them).
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so that it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed, non-empty sentence spans tiling text[start:end] (up to the whitespace between)."""
    spans: list[tuple[int, int]] = []
    sentence_start = start
    for match in _SENTENCE_BREAK.finditer(text, start, end):
        if match.group("punct") is not None:
            following = match.end()
            if following < end and "\n" not in match.group("space"):
                char = text[following]
                if char in _OPENERS and following + 1 < end:
                    char = text[following + 1]
                if not (char.isdigit() or (char.isalpha() and not char.islower())):
                    continue  # "e.g. the", "approx. five": not a sentence end
            cut = match.end("punct")
        elif match.group("cjk") is not None:
            cut = match.end()
        else:
            cut = match.start()
        s, e = _trim(text, sentence_start, cut)
        if s < e:
            spans.append((s, e))
        sentence_start = match.end()
    s, e = _trim(text, sentence_start, end)
    if s < e:
        spans.append((s, e))
    return spans


# --- internal structures -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Segment:
    """A block, trimmed; also stands in for text the blocks do not cover."""

    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    is_heading: bool


@dataclass(frozen=True, slots=True)
class _Unit:
    """The atom of packing: a sentence, or a token-cut piece of a long sentence."""

    start: int
    end: int
    tokens: int
    is_heading: bool
    # The unit's own tokenisation, kept from the first pass so that cutting a long sentence or
    # taking its tail for an overlap does not tokenise it again.
    encoding: Encoding | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class _Draft:
    units: list[_Unit]
    overlap_start: int | None = None  # set when the chunk begins with the previous one's tail
    overlap_tokens: int = 0
    has_content: bool = False  # holds a non-heading unit (kept as a flag: asked per block)

    @property
    def start(self) -> int:
        return self.overlap_start if self.overlap_start is not None else self.units[0].start

    @property
    def end(self) -> int:
        return self.units[-1].end


def _starts_word(encoding: Encoding) -> list[bool]:
    # A wordpiece without the "##" prefix begins a new pre-token (word or punctuation mark).
    # Cutting there never splits a word, so the two halves tokenise exactly as in the whole.
    return [not token.startswith("##") for token in encoding.tokens]


def _own_heading_path(text: str, segment: _Segment) -> tuple[str, ...]:
    """A block's heading path; for a heading, the path including the heading itself."""
    path = segment.heading_path
    if not segment.is_heading:
        return path
    title = " ".join(text[segment.start : segment.end].split())
    # Extractors may already include the heading in its own path: do not repeat it.
    if path and " ".join(path[-1].split()) == title:
        return path
    return (*path, title)


def _segments(extracted: ExtractedText) -> list[_Segment]:
    """Trimmed, non-empty, ordered blocks, plus paragraphs for any text no block covers.

    The chunks must cover every non-whitespace character, so text outside the blocks (or all
    of it, when an extractor gave no blocks) is not dropped but split on blank lines.
    """
    text = extracted.text
    n = len(text)
    segments: list[_Segment] = []

    def add_uncovered(start: int, end: int, page: int | None, path: tuple[str, ...]) -> None:
        position = start
        for match in _BLANK_LINE.finditer(text, start, end):
            s, e = _trim(text, position, match.start())
            if s < e:
                segments.append(_Segment(s, e, page, path, False))
            position = match.end()
        s, e = _trim(text, position, end)
        if s < e:
            segments.append(_Segment(s, e, page, path, False))

    covered = 0  # text[:covered] has been handed out
    previous: _Segment | None = None
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
        s, e = _trim(text, start, end)
        if s < e:
            previous = _Segment(s, e, block.page, tuple(block.heading_path), block.is_heading)
            segments.append(previous)
    if covered < n:
        if previous is not None:
            add_uncovered(covered, n, previous.page, _own_heading_path(text, previous))
        else:
            add_uncovered(covered, n, None, ())
    return segments


# --- the chunker ---------------------------------------------------------------------------


class _Chunker:
    def __init__(self, text: str, max_tokens: int, overlap_tokens: int) -> None:
        self.text = text
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.tokenizer = get_tokenizer()

    def _encode(self, start: int, end: int) -> Encoding:
        return self.tokenizer.encode(self.text[start:end], add_special_tokens=False)

    # -- cutting at token boundaries

    def split_by_tokens(
        self,
        start: int,
        end: int,
        limit: int,
        is_heading: bool,
        encoding: Encoding | None = None,
    ) -> list[_Unit]:
        """Cut text[start:end] into units of at most ``limit`` tokens.

        ``encoding``, if given, is the tokenisation of exactly text[start:end]. Cuts go before
        a word-initial token where possible; a word longer than ``limit`` tokens is cut between
        its wordpieces. The pieces tile the span (whatever lies between two tokens stays with
        the earlier piece), so no character is lost.
        """
        text = self.text
        if encoding is None:
            encoding = self._encode(start, end)
        offsets = encoding.offsets
        starts_word = _starts_word(encoding)
        n = len(offsets)
        if n == 0:  # only characters the tokenizer ignores (control, zero-width)
            s, e = _trim(text, start, end)
            return [_Unit(s, e, 0, is_heading)] if s < e else []
        # (start, end, tokens in the whole's tokenisation, whether that count is exact)
        pieces: list[tuple[int, int, int, bool]] = []
        piece_start = start
        clean_start = True
        i = 0
        while i < n:
            cut = i + limit
            if cut >= n:
                cut = n
            else:
                k = cut
                while k > i + 1 and not starts_word[k]:
                    k -= 1
                if starts_word[k]:
                    cut = k
            clean_end = cut == n or starts_word[cut]
            piece_end = end if cut == n else start + offsets[cut][0]
            s, e = _trim(text, piece_start, piece_end)
            if s < e:
                pieces.append((s, e, cut - i, clean_start and clean_end))
            piece_start = piece_end
            clean_start = clean_end
            i = cut
        # Cut only between words, a piece tokenises as it did within the whole; cut inside a
        # word, it may not (wordpieces differ at a word's start), so count those again.
        unsure = [index for index, piece in enumerate(pieces) if not piece[3]]
        recounted = dict(
            zip(
                unsure,
                count_tokens_batch([text[pieces[x][0] : pieces[x][1]] for x in unsure]),
                strict=True,
            )
        )
        units: list[_Unit] = []
        for index, (s, e, estimate, _) in enumerate(pieces):
            count = recounted.get(index, estimate)
            if count <= limit or e - s <= 1 or (s, e) == (start, end):
                units.append(_Unit(s, e, count, is_heading))
            else:
                units.extend(self.split_by_tokens(s, e, limit, is_heading))
        return units

    def tail(self, unit: _Unit, budget: int, after: int) -> tuple[int, int] | None:
        """The last <= ``budget`` tokens of a unit, starting at a word, strictly after ``after``.

        Returns (start, tokens), or None if no word-initial cut gives a non-empty tail.
        """
        encoding = unit.encoding
        if encoding is None:
            encoding = self._encode(unit.start, unit.end)
        offsets = encoding.offsets
        n = len(offsets)
        tokens = encoding.tokens
        for k in range(max(1, n - budget), n):
            start = unit.start + offsets[k][0]
            # Starting at a word, the tail tokenises exactly as the end of the unit did.
            if start > after and not tokens[k].startswith("##"):
                return start, n - k
        return None

    def overlap(self, previous: _Draft, budget: int) -> tuple[int, int] | None:
        """Where the next chunk of the same section should start to repeat previous's end."""
        budget = min(budget, self.overlap_tokens)
        if budget <= 0:
            return None
        tokens = 0
        start: int | None = None
        for unit in reversed(previous.units):
            # Never repeat a heading (it belongs to the chunk it introduces) and never start
            # where `previous` starts: chunk starts must strictly increase.
            if unit.is_heading or unit.start <= previous.start or tokens + unit.tokens > budget:
                break
            tokens += unit.tokens
            start = unit.start
        if start is not None:
            return start, tokens
        last = previous.units[-1]
        if last.is_heading:
            return None
        # The last sentence alone is too long: repeat its trailing tokens instead.
        return self.tail(last, budget, previous.start)

    # -- packing

    def chunk(self, segments: list[_Segment]) -> list[_Draft]:
        text = self.text
        max_tokens = self.max_tokens

        # Sentences of every block, tokenised in one batch.
        sentence_spans: list[list[tuple[int, int]]] = [
            _sentence_spans(text, seg.start, seg.end) for seg in segments
        ]
        flat = [span for spans in sentence_spans for span in spans]
        encodings = iter(
            self.tokenizer.encode_batch([text[s:e] for s, e in flat], add_special_tokens=False)
            if flat
            else []
        )
        # Pieces of an over-long sentence leave room for the overlap the next chunk repeats.
        piece_limit = max_tokens - self.overlap_tokens
        block_units: list[list[_Unit]] = []
        for seg, spans in zip(segments, sentence_spans, strict=True):
            units: list[_Unit] = []
            for s, e in spans:
                encoding = next(encodings)
                count = len(encoding)
                if count <= max_tokens:
                    units.append(_Unit(s, e, count, seg.is_heading, encoding))
                else:
                    units.extend(self.split_by_tokens(s, e, piece_limit, seg.is_heading, encoding))
            block_units.append(units)

        drafts: list[_Draft] = []
        current = _Draft(units=[])
        current_tokens = 0

        def close(need: int | None) -> None:
            """Finish the current chunk; start the next one, with overlap unless need is None."""
            nonlocal current, current_tokens
            if current.units:
                drafts.append(current)
            previous = current
            current = _Draft(units=[])
            current_tokens = 0
            if need is not None and previous.units:
                found = self.overlap(previous, max_tokens - need)
                if found is not None:
                    current.overlap_start, current.overlap_tokens = found
                    current_tokens = current.overlap_tokens

        def add(unit: _Unit) -> None:
            nonlocal current_tokens
            current.units.append(unit)
            current.has_content = current.has_content or not unit.is_heading
            current_tokens += unit.tokens

        for seg, units in zip(segments, block_units, strict=True):
            if not units:
                continue
            total = sum(u.tokens for u in units)
            if seg.is_heading and current.has_content:
                close(None)  # new section: no overlap across the heading
            elif not seg.is_heading and current_tokens + total > max_tokens:
                if current.has_content and total <= max_tokens:
                    close(total)  # the paragraph fits a chunk of its own: do not cut it
            if current_tokens + total <= max_tokens:
                for unit in units:
                    add(unit)
                continue
            # The block must be cut: flow it sentence by sentence.
            for unit in units:
                if current_tokens + unit.tokens <= max_tokens:
                    add(unit)
                    continue
                room = max_tokens - current_tokens
                if current.units and not current.has_content and not unit.is_heading and room:
                    # Only headings so far: fill the room with the start of this sentence
                    # rather than leave the heading alone at the end of a chunk.
                    head, rest = self.split_head(unit, room)
                    add(head)
                    for piece in rest:
                        close(piece.tokens)
                        add(piece)
                    continue
                close(None if unit.is_heading else unit.tokens)
                add(unit)
        close(None)
        return drafts

    def split_head(self, unit: _Unit, room: int) -> tuple[_Unit, list[_Unit]]:
        """Cut a unit into a head of <= room tokens and the rest (in <= max_tokens units)."""
        pieces = self.split_by_tokens(unit.start, unit.end, room, unit.is_heading, unit.encoding)
        head = pieces[0]
        if len(pieces) == 1:
            return head, []
        rest_start = pieces[1].start
        rest_tokens = count_tokens(self.text[rest_start : unit.end])
        if rest_tokens <= self.max_tokens:
            return head, [_Unit(rest_start, unit.end, rest_tokens, unit.is_heading)]
        # Like any over-long sentence, leave room for the overlap of the chunks that follow.
        limit = self.max_tokens - self.overlap_tokens
        return head, self.split_by_tokens(rest_start, unit.end, limit, unit.is_heading)

    # -- verification

    def settle(self, drafts: list[_Draft]) -> list[tuple[_Draft, int]]:
        """Exact token counts of the final slices; shrink any chunk found over budget."""
        text = self.text
        counted: list[tuple[_Draft, int | None]] = [(d, None) for d in drafts]
        while True:
            todo = [i for i, (_, c) in enumerate(counted) if c is None]
            if not todo:
                break
            fresh = count_tokens_batch(
                [text[counted[i][0].start : counted[i][0].end] for i in todo]
            )
            for i, count in zip(todo, fresh, strict=True):
                counted[i] = (counted[i][0], count)
            result: list[tuple[_Draft, int | None]] = []
            for draft, count in counted:
                if count is None:  # unreachable: every draft was just counted
                    raise RuntimeError("chunk left uncounted")
                units = draft.units
                if count <= self.max_tokens or (
                    draft.overlap_start is None
                    and len(units) == 1
                    and units[0].end - units[0].start <= 1
                ):
                    result.append((draft, count))
                elif draft.overlap_start is not None:
                    result.append((replace(draft, overlap_start=None, overlap_tokens=0), None))
                elif len(units) > 1:
                    half = len(units) // 2
                    result.append((_Draft(units=units[:half]), None))
                    result.append((_Draft(units=units[half:]), None))
                else:
                    # A unit whose estimated count was off (a cut inside a word): cut it again,
                    # this time from its own tokenisation.
                    unit = units[0]
                    for piece in self.split_by_tokens(
                        unit.start, unit.end, self.max_tokens, unit.is_heading
                    ):
                        result.append((_Draft(units=[piece]), None))
            # Shrinking may have moved a start back past its predecessor's: dropping the overlap
            # restores order, as a chunk's own units start after all earlier chunks' units.
            for i in range(1, len(result)):
                draft = result[i][0]
                if draft.start <= result[i - 1][0].start and draft.overlap_start is not None:
                    result[i] = (replace(draft, overlap_start=None, overlap_tokens=0), None)
            counted = result
        return [(d, c) for d, c in counted if c is not None]


def _validate(max_tokens: int, overlap_tokens: int) -> None:
    upper = MODEL_MAX_TOKENS - SPECIAL_TOKENS
    if not isinstance(max_tokens, int) or not MIN_MAX_TOKENS <= max_tokens <= upper:
        raise ValueError(
            f"max_tokens must be an integer between {MIN_MAX_TOKENS} and {upper} (the model "
            f"reads {MODEL_MAX_TOKENS} tokens including [CLS] and [SEP]); got {max_tokens!r}"
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
) -> list[ChunkSpan]:
    """Cut an extracted document into chunks of at most ``max_tokens`` tokens each.

    See the module docstring for the rules. Chunks are in text order with strictly increasing
    starts, never start or end with whitespace, and together cover every non-whitespace
    character of ``extracted.text``.
    """
    _validate(max_tokens, overlap_tokens)
    text = extracted.text
    if not text or text.isspace():
        return []
    segments = _segments(extracted)
    chunker = _Chunker(text, max_tokens, overlap_tokens)
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
    return chunks

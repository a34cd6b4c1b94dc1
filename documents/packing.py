"""Packing a document's blocks into chunks of bounded tokens and characters (the rules
are in documents/chunking.py's docstring). Everything here works on offsets into the
one extracted text; nothing is copied.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace

from tokenizers import Encoding

from documents.sentences import sentence_spans, split_giant_words, trim
from documents.tokenizer import count_tokens, count_tokens_batch, get_tokenizer


@dataclass(frozen=True, slots=True)
class Segment:
    """A block, trimmed; also stands in for text the blocks do not cover."""

    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    is_heading: bool
    table_row: bool = False  # packed whole; never the start of an overlap


@dataclass(frozen=True, slots=True)
class Unit:
    """The atom of packing: a sentence, a whole table row, or a token-cut piece of a long
    sentence or row."""

    start: int
    end: int
    tokens: int
    is_heading: bool
    # The unit's own tokenisation, kept from the first pass so that cutting a long sentence or
    # taking its tail for an overlap does not tokenise it again.
    encoding: Encoding | None = field(default=None, compare=False, repr=False)
    table_row: bool = False


@dataclass(slots=True)
class Draft:
    units: list[Unit]
    overlap_start: int | None = None  # set when the chunk begins with the previous one's tail
    overlap_tokens: int = 0
    has_content: bool = False  # holds a non-heading unit (kept as a flag: asked per block)

    @property
    def start(self) -> int:
        return self.overlap_start if self.overlap_start is not None else self.units[0].start

    @property
    def end(self) -> int:
        return self.units[-1].end


def word_starts(encoding: Encoding) -> list[bool]:
    # A wordpiece without the "##" prefix begins a new pre-token (word or punctuation mark).
    # Cutting there never splits a word, so the two halves tokenise exactly as in the whole.
    return [not token.startswith("##") for token in encoding.tokens]


class Chunker:
    def __init__(self, text: str, max_tokens: int, overlap_tokens: int, max_chars: int) -> None:
        self.text = text
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.max_chars = max_chars
        # Pieces of an over-long sentence leave room for the overlap the next chunk repeats.
        self.piece_tokens = max_tokens - overlap_tokens
        self.piece_chars = max(1, max_chars * 3 // 4)
        self.tokenizer = get_tokenizer()

    def _encode(self, start: int, end: int) -> Encoding:
        return self.tokenizer.encode(self.text[start:end], add_special_tokens=False)

    # -- units: sentences, and pieces of the ones too long for a chunk

    def units(self, segments: list[Segment]) -> list[list[Unit]]:
        """Each block's units; the sentences of all blocks are tokenised in one batch."""
        spans = [self._sentences(seg) for seg in segments]
        flat = [span for block in spans for span in block]
        encodings = iter(
            self.tokenizer.encode_batch([self.text[s:e] for s, e in flat], add_special_tokens=False)
            if flat
            else []
        )
        blocks: list[list[Unit]] = []
        for seg, block in zip(segments, spans, strict=True):
            units: list[Unit] = []
            for s, e in block:
                encoding = next(encodings)
                if len(encoding) <= self.max_tokens:
                    unit = Unit(s, e, len(encoding), seg.is_heading, encoding, seg.table_row)
                    units.append(unit)
                else:
                    units.extend(
                        self.split_by_tokens(s, e, self.piece_tokens, seg.is_heading, encoding)
                    )
            blocks.append(units)
        return blocks

    def _sentences(self, seg: Segment) -> list[tuple[int, int]]:
        # A table row is one unit: a full stop inside a cell is no place to cut it. Only a
        # row too long for a chunk by itself is cut (by tokens, in units()).
        if seg.table_row and seg.end - seg.start <= self.max_chars:
            return [(seg.start, seg.end)]
        # A word without spaces is one [UNK] to the model however long it is: such a word
        # is cut by characters before anything is tokenised.
        spans: list[tuple[int, int]] = []
        for s, e in sentence_spans(self.text, seg.start, seg.end):
            if e - s > self.piece_chars:
                spans.extend(split_giant_words(self.text, s, e, self.piece_chars))
            else:
                spans.append((s, e))
        return spans

    # -- cutting at token boundaries

    def split_by_tokens(
        self,
        start: int,
        end: int,
        limit: int,
        is_heading: bool,
        encoding: Encoding | None = None,
    ) -> list[Unit]:
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
        starts_word = word_starts(encoding)
        n = len(offsets)
        if n == 0:  # only characters the tokenizer ignores (control, zero-width)
            s, e = trim(text, start, end)
            return [Unit(s, e, 0, is_heading)] if s < e else []
        # (start, end, tokens in the whole's tokenisation, whether that count is exact)
        pieces: list[tuple[int, int, int, bool]] = []
        piece_start = start
        clean_start = True
        i = 0
        token_starts = [offset[0] for offset in offsets]
        while i < n:
            cut = self._next_cut(token_starts, starts_word, i, limit, end - start)
            clean_end = cut == n or starts_word[cut]
            piece_end = end if cut == n else start + offsets[cut][0]
            s, e = trim(text, piece_start, piece_end)
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
        units: list[Unit] = []
        for index, (s, e, estimate, _) in enumerate(pieces):
            count = recounted.get(index, estimate)
            if count <= limit or e - s <= 1 or (s, e) == (start, end):
                units.append(Unit(s, e, count, is_heading))
            else:
                units.extend(self.split_by_tokens(s, e, limit, is_heading))
        return units

    def _next_cut(
        self, token_starts: list[int], starts_word: list[bool], i: int, limit: int, length: int
    ) -> int:
        """Where the piece beginning at token i ends: after at most `limit` tokens and
        `piece_chars` characters, before a word-initial token where possible."""
        n = len(token_starts)
        cut = min(n, i + limit)
        piece_end = length if cut == n else token_starts[cut]
        if piece_end - token_starts[i] > self.piece_chars:
            bound = token_starts[i] + self.piece_chars
            cut = max(i + 1, bisect_right(token_starts, bound, i + 1, cut) - 1)
        if cut < n:
            k = cut
            while k > i + 1 and not starts_word[k]:
                k -= 1
            if starts_word[k]:
                cut = k
        return cut

    def tail(self, unit: Unit, budget: int, after: int) -> tuple[int, int] | None:
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

    def overlap(self, previous: Draft, budget: int) -> tuple[int, int] | None:
        """Where the next chunk of the same section should start to repeat previous's end."""
        budget = min(budget, self.overlap_tokens)
        if budget <= 0:
            return None
        tokens = 0
        start: int | None = None
        for unit in reversed(previous.units):
            # Never repeat a heading (it belongs to the chunk it introduces) and never start
            # where `previous` starts: chunk starts must strictly increase. Table rows are
            # not repeated either: each chunk of rows carries the header, not its neighbours.
            if (
                unit.is_heading
                or unit.table_row
                or unit.start <= previous.start
                or tokens + unit.tokens > budget
            ):
                break
            tokens += unit.tokens
            start = unit.start
        if start is not None:
            return start, tokens
        last = previous.units[-1]
        if last.is_heading or last.table_row:
            return None
        # The last sentence alone is too long: repeat its trailing tokens instead.
        return self.tail(last, budget, previous.start)

    # -- packing

    def chunk(self, segments: list[Segment]) -> list[Draft]:
        packer = _Packer(self)
        for seg, units in zip(segments, self.units(segments), strict=True):
            if units:
                packer.add_block(seg, units)
        return packer.finish()

    def split_head(self, unit: Unit, room: int) -> tuple[Unit, list[Unit]]:
        """Cut a unit into a head of <= room tokens and the rest (in <= max_tokens units)."""
        pieces = self.split_by_tokens(unit.start, unit.end, room, unit.is_heading, unit.encoding)
        head = pieces[0]
        if len(pieces) == 1:
            return head, []
        rest_start = pieces[1].start
        rest_tokens = count_tokens(self.text[rest_start : unit.end])
        if rest_tokens <= self.max_tokens:
            return head, [Unit(rest_start, unit.end, rest_tokens, unit.is_heading)]
        # Like any over-long sentence, leave room for the overlap of the chunks that follow.
        limit = self.max_tokens - self.overlap_tokens
        return head, self.split_by_tokens(rest_start, unit.end, limit, unit.is_heading)

    # -- verification

    def settle(self, drafts: list[Draft]) -> list[tuple[Draft, int]]:
        """Exact token counts of the final slices; shrink any chunk found over budget."""
        # A lone unit's count is already exact (its own tokenisation, or recounted when it
        # was cut inside a word); only joined units must be counted again.
        counted: list[tuple[Draft, int | None]] = [
            (d, d.units[0].tokens if len(d.units) == 1 and d.overlap_start is None else None)
            for d in drafts
        ]
        checked = False  # the known counts are checked against the budget too
        while not checked or any(count is None for _, count in counted):
            checked = True
            todo = [i for i, (_, count) in enumerate(counted) if count is None]
            fresh = count_tokens_batch(
                [self.text[counted[i][0].start : counted[i][0].end] for i in todo]
            )
            for i, fresh_count in zip(todo, fresh, strict=True):
                counted[i] = (counted[i][0], fresh_count)
            result: list[tuple[Draft, int | None]] = []
            for draft, known in counted:
                if known is not None and self._within(draft, known):
                    result.append((draft, known))
                else:
                    result.extend((smaller, None) for smaller in self._shrink(draft))
            # Shrinking may have moved a start back past its predecessor's: dropping the overlap
            # restores order, as a chunk's own units start after all earlier chunks' units.
            for i in range(1, len(result)):
                draft = result[i][0]
                if draft.start <= result[i - 1][0].start and draft.overlap_start is not None:
                    result[i] = (replace(draft, overlap_start=None, overlap_tokens=0), None)
            counted = result
        return [(d, c) for d, c in counted if c is not None]

    def _within(self, draft: Draft, count: int) -> bool:
        if draft.overlap_start is None and len(draft.units) == 1:
            # One unit is never over the character cap (units are cut to fit it), and one
            # character cannot be cut further.
            unit = draft.units[0]
            return count <= self.max_tokens or unit.end - unit.start <= 1
        return count <= self.max_tokens and draft.end - draft.start <= self.max_chars

    def _shrink(self, draft: Draft) -> list[Draft]:
        units = draft.units
        if draft.overlap_start is not None:
            return [replace(draft, overlap_start=None, overlap_tokens=0)]
        if len(units) > 1:
            half = len(units) // 2
            return [Draft(units=units[:half]), Draft(units=units[half:])]
        # A unit whose estimated count was off (a cut inside a word): cut it again, this
        # time from its own tokenisation.
        unit = units[0]
        pieces = self.split_by_tokens(unit.start, unit.end, self.max_tokens, unit.is_heading)
        return [Draft(units=[piece]) for piece in pieces]


class _Packer:
    """Fills chunks block by block (see the rules in documents/chunking.py)."""

    def __init__(self, chunker: Chunker) -> None:
        self.chunker = chunker
        self.max_tokens = chunker.max_tokens
        self.max_chars = chunker.max_chars
        self.drafts: list[Draft] = []
        self.current = Draft(units=[])
        self.tokens = 0

    def _start(self, first: int) -> int:
        """Where the current chunk starts if `first` is the next character added."""
        if self.current.overlap_start is not None:
            return self.current.overlap_start
        return self.current.units[0].start if self.current.units else first

    def fits(self, tokens: int, start: int, end: int) -> bool:
        """Whether text[start:end] of `tokens` tokens still fits the current chunk."""
        return self.tokens + tokens <= self.max_tokens and end - self._start(start) <= (
            self.max_chars
        )

    def add(self, unit: Unit) -> None:
        self.current.units.append(unit)
        self.current.has_content = self.current.has_content or not unit.is_heading
        self.tokens += unit.tokens

    def close(self, need: tuple[int, int] | None) -> None:
        """Finish the current chunk and start the next one. With `need` (the tokens and
        the end of what comes next), the next one opens with the previous one's tail when
        both fit together."""
        previous = self.current
        if previous.units:
            self.drafts.append(previous)
        self.current = Draft(units=[])
        self.tokens = 0
        if need is None or not previous.units:
            return
        tokens, end = need
        found = self.chunker.overlap(previous, self.max_tokens - tokens)
        if found is not None and end - found[0] <= self.max_chars:
            self.current.overlap_start, self.current.overlap_tokens = found
            self.tokens = self.current.overlap_tokens

    def add_block(self, seg: Segment, units: list[Unit]) -> None:
        total = sum(u.tokens for u in units)
        start, end = units[0].start, units[-1].end
        if seg.is_heading and self.current.has_content:
            self.close(None)  # new section: no overlap across the heading
        elif not seg.is_heading and not self.fits(total, start, end):
            alone = total <= self.max_tokens and end - start <= self.max_chars
            if self.current.has_content and alone:
                self.close((total, end))  # the paragraph fits a chunk of its own: do not cut it
        if self.fits(total, start, end):
            for unit in units:
                self.add(unit)
            return
        for unit in units:  # the block must be cut: flow it sentence by sentence
            self.flow(unit)

    def flow(self, unit: Unit) -> None:
        if self.fits(unit.tokens, unit.start, unit.end):
            self.add(unit)
            return
        room = self.max_tokens - self.tokens
        current = self.current
        if (
            current.units
            and not current.has_content
            and not unit.is_heading
            and room
            and unit.end - current.start <= self.max_chars  # only tokens are short
        ):
            # Only headings so far: fill the room with the start of this sentence rather
            # than leave the heading alone at the end of a chunk.
            head, rest = self.chunker.split_head(unit, room)
            self.add(head)
            for piece in rest:
                self.close((piece.tokens, piece.end))
                self.add(piece)
            return
        self.close(None if unit.is_heading else (unit.tokens, unit.end))
        self.add(unit)

    def finish(self) -> list[Draft]:
        self.close(None)
        return self.drafts

"""Sentence and paragraph boundaries in extracted text, and cutting a span that is too
long to be one unit (a multi-megabyte "word" or line) into pieces of bounded length.

Spans are (start, end) offsets into the text: the chunker never copies or rewrites it.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so that it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
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
        s, e = trim(text, sentence_start, cut)
        if s < e:
            spans.append((s, e))
        sentence_start = match.end()
    s, e = trim(text, sentence_start, end)
    if s < e:
        spans.append((s, e))
    return spans


def paragraph_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Trimmed, non-empty paragraphs (split on blank lines) of text[start:end]."""
    spans: list[tuple[int, int]] = []
    position = start
    for match in _BLANK_LINE.finditer(text, start, end):
        s, e = trim(text, position, match.start())
        if s < e:
            spans.append((s, e))
        position = match.end()
    s, e = trim(text, position, end)
    if s < e:
        spans.append((s, e))
    return spans


def split_giant_words(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    """text[start:end] as spans in which no run of non-space characters is longer than
    ``max_chars``: such a run (a "word" of megabytes) is one [UNK] token to the model, so
    only characters can bound it; it is cut into pieces of ``max_chars``. The text around
    it is kept whole."""
    spans: list[tuple[int, int]] = []
    position = start
    for match in _giant_word(max_chars).finditer(text, start, end):
        s, e = trim(text, position, match.start())
        if s < e:
            spans.append((s, e))
        spans.extend(
            (piece, min(piece + max_chars, match.end()))
            for piece in range(match.start(), match.end(), max_chars)
        )
        position = match.end()
    s, e = trim(text, position, end)
    if s < e:
        spans.append((s, e))
    return spans


@lru_cache(maxsize=8)
def _giant_word(max_chars: int) -> re.Pattern[str]:
    return re.compile(rf"\S{{{max_chars + 1},}}")

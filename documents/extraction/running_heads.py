"""Running headers, footers and page numbers of paged text (PDF), found by repetition.

A report prints its title, "Confidential" or "Page 3 of 10" on every page. Left in the
text, the lines split paragraphs that run over a page break and make every page match a
search for the title. They are dropped before the blocks (and so the offsets) are made;
citations keep their page numbers, which come from the page index, not from the text.

A line is a running head when, with its numbers masked ("Page 3 of 10" and "Page 4 of 10"
are both "page # of #"), it is among the first or last EDGE_LINES lines of more than half of
the pages (MIN_PAGES at least), or of more than half of the odd or of the even pages
(books alternate the book's title and the chapter's on facing pages). The text order of a
page's lines is used rather than their position: producers write headers and footers
either first or last, and both ends are looked at.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from django.conf import settings

from .tables import RowSegment
from .text import Segment, clean

MIN_PAGES = 3
# Lines at each end of a page's text that may be a header or footer: a header and a
# sub-header (or a footer and a page number) on lines of their own, with room for one more.
EDGE_LINES = 3
# Longer lines are text, not a header (a repeated first sentence is not chrome either).
MAX_HEAD_CHARS = 120

_NUMBER = re.compile(r"\d+")
# A lone roman numeral (up to 89) is a front-matter page number: "iv", "- xii -".
_ROMAN = re.compile(r"[\W_]*(?=[ivxl])(xc|xl|l?x{0,3})(ix|iv|v?i{0,3})[\W_]*")
_SPACE = re.compile(r"\s+")


def head_key(line: str) -> str:
    """A line as compared across pages: case and spacing ignored, numbers masked."""
    key = _SPACE.sub(" ", clean(line)).strip().casefold()
    if len(key) > MAX_HEAD_CHARS:
        return ""
    if _ROMAN.fullmatch(key):
        return re.sub("[ivxl]+", "#", key)
    return _NUMBER.sub("#", key)


def _edges(text: str) -> list[str]:
    """The keys of a page's first and last EDGE_LINES non-blank lines."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return []  # a page of one line: that line is its content, even if repeated
    if len(lines) <= 2 * EDGE_LINES:
        edge = lines
    else:
        edge = lines[:EDGE_LINES] + lines[-EDGE_LINES:]
    return [key for key in map(head_key, edge) if key]


def _frequent(counts: Counter[str], pages: int) -> set[str]:
    if pages < MIN_PAGES:
        return set()
    return {key for key, count in counts.items() if count * 2 > pages}


def running_heads(texts: Mapping[int, str]) -> frozenset[str]:
    """The keys (see head_key) of the running heads of a document's pages, {number: text};
    none with STRIP_BOILERPLATE off."""
    if not settings.STRIP_BOILERPLATE:
        return frozenset()
    pages = [number for number, text in texts.items() if text.strip()]
    if len(pages) < MIN_PAGES:
        return frozenset()
    counts: dict[int | None, Counter[str]] = {None: Counter(), 0: Counter(), 1: Counter()}
    for number in pages:
        keys = set(_edges(texts[number]))
        counts[None].update(keys)
        counts[number % 2].update(keys)
    found = _frequent(counts[None], len(pages))
    for parity in (0, 1):
        found |= _frequent(counts[parity], sum(1 for n in pages if n % 2 == parity))
    return frozenset(found)


def without_running_heads(text: str, heads: frozenset[str]) -> str:
    """``text`` without the lines at its ends whose key is one of ``heads``."""
    if not heads:
        return text
    lines = text.split("\n")
    filled = [index for index, line in enumerate(lines) if line.strip()]
    if len(filled) < 2:
        return text
    edge = set(filled[:EDGE_LINES] + filled[-EDGE_LINES:])
    return "\n".join(
        line for index, line in enumerate(lines) if index not in edge or head_key(line) not in heads
    )


def segments_without_running_heads(
    segments: Sequence[Segment], heads: frozenset[str]
) -> list[Segment]:
    """The same for a page already cut into segments (a page with tables): the heads are
    lines of its first or last text segment; table rows are left alone."""
    kept = list(segments)
    if not heads:
        return kept
    texts = [index for index, seg in enumerate(kept) if not isinstance(seg, RowSegment)]
    for index in {*texts[:1], *texts[-1:]}:
        stripped = without_running_heads(kept[index].text, heads)
        kept[index] = dataclasses.replace(kept[index], text=stripped)
    return [seg for seg in kept if seg.text.strip()]

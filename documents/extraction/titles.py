"""Titles a reader would give a document, when its format has no title field of its own.

Order of preference, per format: Markdown's first level-1 heading as plain text (badge
images and link syntax dropped); for plain text, the first short line that reads like a
title; for PDFs without title metadata, the first page's line set in the largest font.
When none qualifies the document shows its file name (``documents.citations``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .text import one_line

TITLE_MAX_LINE = 120
# Only a few leading lines are looked at: a title is at the top or it is not there.
_LEADING_LINES = 5

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|!\[[^\]]*\]\[[^\]]*\]")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)|\[([^\]]*)\]\[[^\]]*\]")
_HTML_TAG = re.compile(r"<[^>]{0,200}>")
_EMPHASIS = re.compile(r"(\*{1,3}|_{1,3}|~~|`+)(?=\S)(.+?)(?<=\S)\1")
_HAS_LETTER = re.compile(r"[^\W\d_]")


def markdown_plain(text: str) -> str:
    """A Markdown heading as the words a reader sees: images (badges) dropped, links
    reduced to their text, emphasis and inline HTML removed."""
    text = _IMAGE.sub("", text)
    # Nested forms such as [![badge](img)](link) leave "[](link)" after the first pass.
    for _ in range(3):
        reduced = _LINK.sub(lambda m: m.group(1) or m.group(2) or "", text)
        if reduced == text:
            break
        text = reduced
    text = _HTML_TAG.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    return one_line(text)


def readable(line: str) -> bool:
    """Worth showing as a title: has a letter, and is not a whole paragraph."""
    return len(line) <= TITLE_MAX_LINE and _HAS_LETTER.search(line) is not None


def first_line_title(text: str) -> str | None:
    """The first non-empty line that is short and has a letter; rules ("=====") and
    numbers ("1.") above it are passed over. A long first line is prose, not a title."""
    seen = 0
    for raw in text.split("\n"):
        line = one_line(raw)
        if not line:
            continue
        seen += 1
        if len(line) > TITLE_MAX_LINE or seen > _LEADING_LINES:
            return None
        if readable(line):
            return line
    return None


def largest_font_line(page: Any) -> str | None:
    """The text of a pypdf page set in its largest font, if that font is larger than
    the body text (the most common size); None when the page is all one size."""
    sizes: list[tuple[float, str]] = []

    def visit(text: str, cm: Any, tm: Any, font: Any, size: float) -> None:
        if text.strip():
            # The effective size is the font size scaled by the text and page matrices.
            scale = abs(float(tm[3]) * float(cm[3])) or 1.0
            sizes.append((round(float(size) * scale, 1), text))

    page.extract_text(visitor_text=visit)
    if not sizes:
        return None
    counts: Counter[float] = Counter()
    for size, text in sizes:
        counts[size] += len(text)
    body = counts.most_common(1)[0][0]
    largest = max(counts)
    if largest <= body:
        return None
    line = one_line(" ".join(text for size, text in sizes if size == largest))
    return line if readable(line) else None

"""The search page's snippet for a result the keyword leg did not find: the passage of the
chunk that best matches the query, with the query's words highlighted.

Keyword matches get PostgreSQL's ts_headline (in the search SQL), which centres on the
matched lexemes. A semantic match may share no lexeme with the query, and ts_headline then
shows the chunk's first words. Here, in Python on the page's ten results (cheap: no SQL,
no extra round trip), the passage is the sentence window with the most query terms; when
no term occurs at all, the window closest in meaning, from ONE batched model call for the
whole page (the query and the candidate windows together).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from documents.embedding import EmbeddingError, embed_texts
from documents.highlight import highlight, query_terms, term_positions
from documents.sentences import sentence_spans

logger = logging.getLogger(__name__)

SNIPPET_CHARS = 300  # about as long as ts_headline's two fragments of 20–40 words
# Windows compared by meaning per chunk; per page, SEARCH_SNIPPET_MEANING_WINDOWS bounds
# the one model call a page may make (the query and the windows, each <= 300 characters).
# The best-ranked results spend the budget first; the rest show their first window.
MAX_MEANING_WINDOWS = 3
# Only a chunk's start is read: a chunk stored before the chunker bounded them can be
# megabytes (the SQL's ts_headline reads a bounded start for the same reason).
SCAN_CHARS = 20_000
ELLIPSIS = "…"

Span = tuple[int, int]


@dataclass(frozen=True)
class SnippetSource:
    """What a snippet is cut from: a result's chunk text, keyed by chunk id."""

    key: int
    text: str


def _pieces(text: str, start: int, end: int, max_chars: int) -> list[Span]:
    """text[start:end] in pieces of at most max_chars, cut at spaces where there are any."""
    pieces: list[Span] = []
    while end - start > max_chars:
        cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
        cut = cut if cut > start else start + max_chars
        pieces.append((start, cut))
        start = cut + 1 if text[cut : cut + 1] == " " else cut
    if start < end:
        pieces.append((start, end))
    return pieces


def sentence_windows(
    text: str, *, max_chars: int = SNIPPET_CHARS, tile: bool = False
) -> list[Span]:
    """Runs of whole sentences of at most max_chars (an overlong sentence is cut in pieces).
    One window starts at each sentence; with `tile`, the windows do not overlap."""
    units = [
        piece
        for s, e in sentence_spans(text, 0, len(text))
        for piece in _pieces(text, s, e, max_chars)
    ]
    windows: list[Span] = []
    i = 0
    while i < len(units):
        start, end = units[i]
        j = i + 1
        while j < len(units) and units[j][1] - start <= max_chars:
            end = units[j][1]
            j += 1
        windows.append((start, end))
        i = j if tile else i + 1
    return windows


def best_by_terms(text: str, windows: Sequence[Span], terms: frozenset[str]) -> Span | None:
    """The window with the most distinct query terms (then the most occurrences; then the
    first), or None when no term occurs in any."""
    found = term_positions(text, terms)  # the words are stemmed once, not once per window
    best: Span | None = None
    best_score = (0, 0)
    for start, end in windows:
        inside = [term for position, term in found if start <= position < end]
        score = (len(set(inside)), len(inside))
        if score > best_score:
            best, best_score = (start, end), score
    return best


def render(text: str, span: Span, terms: frozenset[str]) -> str:
    """The passage as escaped HTML with the terms in <mark>, with an ellipsis where the
    chunk goes on."""
    start, end = span
    before = f"{ELLIPSIS} " if start > 0 else ""
    after = f" {ELLIPSIS}" if end < len(text.rstrip()) else ""
    return before + highlight(text[start:end], terms) + after


def _closest_by_meaning(
    query: str, candidates: dict[int, tuple[str, list[Span]]]
) -> dict[int, Span]:
    """For each source, its window closest in meaning to the query: one model call in all."""
    keys = list(candidates)
    texts = [query]
    owners: list[tuple[int, Span]] = []
    for key in keys:
        text, windows = candidates[key]
        for span in windows:
            texts.append(text[span[0] : span[1]])
            owners.append((key, span))
    try:
        vectors = embed_texts(texts)
    except EmbeddingError:
        logger.warning("snippet windows could not be embedded; showing the first passage")
        return {key: candidates[key][1][0] for key in keys}
    similarity = vectors[1:] @ vectors[0]
    best: dict[int, Span] = {}
    best_value: dict[int, float] = {}
    for (key, span), value in zip(owners, np.asarray(similarity).tolist(), strict=True):
        if key not in best or value > best_value[key]:
            best[key], best_value[key] = span, value
    return best


def passage_snippets(query: str, sources: Sequence[SnippetSource]) -> dict[int, str]:
    """Each source's best passage as HTML, keyed like the sources."""
    terms = query_terms(query)
    spans: dict[int, Span] = {}
    by_meaning: dict[int, tuple[str, list[Span]]] = {}
    budget = settings.SEARCH_SNIPPET_MEANING_WINDOWS
    sources = [SnippetSource(s.key, s.text[:SCAN_CHARS]) for s in sources]
    for source in sources:
        windows = sentence_windows(source.text)
        if not windows:
            continue
        chosen = best_by_terms(source.text, windows, terms)
        if chosen is not None:
            spans[source.key] = chosen
            continue
        tiles = sentence_windows(source.text, tile=True)[:MAX_MEANING_WINDOWS]
        if len(tiles) == 1 or budget < len(tiles):
            spans[source.key] = tiles[0]
        else:
            by_meaning[source.key] = (source.text, tiles)
            budget -= len(tiles)
    if by_meaning:
        spans.update(_closest_by_meaning(query, by_meaning))
    texts = {source.key: source.text for source in sources}
    return {key: render(texts[key], span, terms) for key, span in spans.items()}

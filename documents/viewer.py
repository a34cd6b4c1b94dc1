"""What the document page shows: its text once (consecutive chunks overlap; the overlap is
shown in one of them only), a page of chunks at a time, the cited chunk whole with the
query's words marked, and the way back to the search the reader came from.

The page reads the document's text from `extracted_text` by the chunks' offsets
(chunk.text == extracted_text[char_start:char_end]), fetching only the page's stretch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.db.models.functions import Length, Substr
from django.http import QueryDict
from django.urls import reverse
from django.utils.http import urlencode

from documents.citations import document_url, pages_label
from documents.highlight import query_terms
from documents.models import Chunk, Document
from documents.table_view import Part, chunk_parts

PAGE_CHUNKS = 40  # a page of about 40 x 200 tokens: tens of kilobytes of HTML
# The search page's state, the only parameters `back` may carry.
SEARCH_STATE_KEYS = ("q", "mode", "collection", "page")
MAX_BACK_CHARS = 2_000

Span = tuple[int, int]


@dataclass(frozen=True)
class ChunkView:
    chunk: Chunk
    # Paragraphs (each a list of lines) and tables, escaped HTML (documents/table_view.py).
    parts: list[Part]
    cited: bool = False

    @property
    def pages(self) -> str:
        return pages_label(self.chunk.first_page, self.chunk.last_page)


@dataclass(frozen=True)
class ViewerPageLink:
    number: int
    url: str
    current: bool


@dataclass(frozen=True)
class ViewerPage:
    chunks: list[ChunkView]
    number: int
    count: int
    links: list[ViewerPageLink]
    previous_url: str | None
    next_url: str | None
    cited_elsewhere_url: str | None  # the cited chunk is on another page


# The way back to the search -------------------------------------------------------------


def search_state(data: QueryDict) -> str:
    """The search page's state as a query string, for a result link's `back` parameter."""
    kept = [(key, value) for key in SEARCH_STATE_KEYS for value in data.getlist(key)]
    return urlencode(kept)


def back_state(raw: str) -> QueryDict:
    """The search state a `back` parameter carries, reduced to the search page's own
    parameters. Only a query string is read (never a URL), and the link built from it
    always points at our search page: no open redirect."""
    parsed = QueryDict(raw[:MAX_BACK_CHARS].lstrip("?"))
    state = QueryDict(mutable=True)
    for key in SEARCH_STATE_KEYS:
        values = [v for v in parsed.getlist(key) if v]
        if values:
            state.setlist(key, values)
    return state


def search_back_url(raw: str) -> str:
    state = back_state(raw)
    url = reverse("search-page")
    return f"{url}?{state.urlencode()}" if "q" in state else url


# The text, once -------------------------------------------------------------------------


def own_spans(spans: list[Span], *, reach: int, cited: int | None) -> list[Span]:
    """The part of each chunk's span to show so that overlapping text shows once: each chunk
    from where the text shown so far ends (`reach`), except the cited chunk, shown whole
    (the chunks before it give up the overlap)."""
    shown: list[Span] = []
    for i, (start, end) in enumerate(spans):
        if i != cited:
            start = max(start, reach)
        if cited is not None and i < cited:
            end = min(end, spans[cited][0])
        shown.append((start, max(start, end)))
        reach = max(reach, end)
    return shown


def _text_source(document: Document, chunks: list[Chunk], reach: int) -> tuple[str, int] | None:
    """The stretch of extracted_text the page shows and its offset, or None when the stored
    text does not match the chunks (a document from before offsets were kept)."""
    start, end = min(reach, chunks[0].char_start), chunks[-1].char_end
    row = (
        Document.objects.filter(pk=document.pk)
        .annotate(
            part=Substr("extracted_text", start + 1, end - start), length=Length("extracted_text")
        )
        .values_list("part", "length")
        .first()
    )
    if row is None or row[1] < end:
        return None
    part = row[0]
    if any(part[c.char_start - start : c.char_end - start] != c.text for c in chunks):
        return None
    return part, start


def _chunk_views(
    document: Document,
    chunks: list[Chunk],
    *,
    reach: int,
    cited_id: int | None,
    terms: frozenset[str],
) -> list[ChunkView]:
    ids = [c.id for c in chunks]
    cited = ids.index(cited_id) if cited_id in ids else None
    source = _text_source(document, chunks, reach)
    if source is None:
        texts = [c.text for c in chunks]
    else:
        part, offset = source
        spans = own_spans([(c.char_start, c.char_end) for c in chunks], reach=reach, cited=cited)
        texts = [part[s - offset : e - offset] for s, e in spans]
    views = []
    for i, (chunk, text) in enumerate(zip(chunks, texts, strict=True)):
        marked = terms if i == cited else frozenset()
        views.append(
            ChunkView(chunk, chunk_parts(text, chunk.heading_path, marked), cited=i == cited)
        )
    return views


# Pages ----------------------------------------------------------------------------------


def _position(document: Document, chunk_id: int | None) -> int | None:
    """The cited chunk's 0-based position in the document, if it is one of its chunks."""
    if chunk_id is None:
        return None
    ordinal = document.chunks.filter(pk=chunk_id).values_list("ordinal", flat=True).first()
    if ordinal is None:
        return None
    return document.chunks.filter(ordinal__lt=ordinal).count()


def viewer_page(
    document: Document, *, cited_id: int | None, page: int | None, back: str
) -> ViewerPage:
    """The page of chunks to show: `page` if asked for (clamped to the pages there are),
    else the cited chunk's page, else the first."""
    total = document.chunks.count()
    count = max(1, math.ceil(total / PAGE_CHUNKS))
    cited_position = _position(document, cited_id)
    cited_page = None if cited_position is None else cited_position // PAGE_CHUNKS + 1
    number = min(max(page or cited_page or 1, 1), count)
    first = (number - 1) * PAGE_CHUNKS
    rows = list(
        document.chunks.order_by("ordinal").only(
            "id",
            "ordinal",
            "text",
            "char_start",
            "char_end",
            "first_page",
            "last_page",
            "heading_path",
            "document_id",
        )[max(first - 1, 0) : first + PAGE_CHUNKS]
    )
    # The previous page's last chunk only says where the text shown there ends.
    reach = rows.pop(0).char_end if first > 0 and rows else 0
    terms = query_terms(back_state(back).get("q", ""))
    views = (
        _chunk_views(document, rows, reach=reach, cited_id=cited_id, terms=terms) if rows else []
    )

    def url(n: int) -> str:
        return document_url(document.pk, cited_id, back=back, page=n)

    window = range(max(1, number - 3), min(count, number + 3) + 1)
    return ViewerPage(
        chunks=views,
        number=number,
        count=count,
        links=[ViewerPageLink(n, url(n), n == number) for n in window],
        previous_url=url(number - 1) if number > 1 else None,
        next_url=url(number + 1) if number < count else None,
        cited_elsewhere_url=(
            document_url(document.pk, cited_id, back=back)
            if cited_page is not None and cited_page != number
            else None
        ),
    )

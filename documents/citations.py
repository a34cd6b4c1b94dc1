"""How a citation reads, in one place: the page label, the title shown for a document, and
the link to a chunk on its document's page. The search page, the API, the RAG context and
the admin all cite through these, so a citation reads the same everywhere."""

from __future__ import annotations

from django.urls import reverse
from django.utils.http import urlencode


def pages_label(first: int | None, last: int | None) -> str:
    """"p. 3", "pp. 3–5", or "" for text without pages."""
    if first is None:
        return ""
    if last is None or last == first:
        return f"p. {first}"
    return f"pp. {first}–{last}"


def display_title(title: str | None, source_name: str) -> str:
    """The document's title, or its file name when extraction found none."""
    return title or source_name


def document_url(
    document_id: int, chunk_id: int | None = None, *, back: str = "", page: int | None = None
) -> str:
    """The document's page; with a chunk, scrolled to it and highlighted; `page` picks a
    page of a long document's text, `back` is the search the reader returns to."""
    params: list[tuple[str, str | int]] = []
    if chunk_id is not None:
        params.append(("chunk", chunk_id))
    if page is not None:
        params.append(("page", page))
    if back:
        params.append(("back", back))
    url = reverse("document-detail", args=[document_id])
    query = f"?{urlencode(params)}" if params else ""
    anchor = f"#chunk-{chunk_id}" if chunk_id is not None and page is None else ""
    return url + query + anchor

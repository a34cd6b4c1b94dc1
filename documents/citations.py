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


def document_url(document_id: int, chunk_id: int | None = None) -> str:
    """The document's page; with a chunk, scrolled to it and highlighted."""
    url = reverse("document-detail", args=[document_id])
    if chunk_id is None:
        return url
    return f"{url}?{urlencode({'chunk': chunk_id})}#chunk-{chunk_id}"

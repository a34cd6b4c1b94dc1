"""The document page and the download of its original, for those who may read it."""

from __future__ import annotations

import json
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from documents.apis import INLINE_CONTENT_TYPES, original_file_response, wants_inline
from documents.models import Document
from documents.selectors import document_list_readable
from documents.viewer import search_back_url, viewer_page


def _readable_document(request: HttpRequest, pk: int) -> Document:
    """The document, or 404 when it does not exist or the caller may not read it."""
    documents = document_list_readable(user=request.user).select_related("collection")
    return get_object_or_404(documents.defer("extracted_text"), pk=pk)


def _metadata_rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in sorted(metadata.items())
    ]


def _number(request: HttpRequest, name: str) -> int | None:
    """A positive integer parameter; anything else counts as absent (never an error page)."""
    value = request.GET.get(name, "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 12 else None


def document_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The document's text a page of chunks at a time; `chunk` marks the cited chunk (and
    picks its page), `page` picks another page, `back` is the search to return to."""
    document = _readable_document(request, pk)
    back = request.GET.get("back", "")
    context = {
        "document": document,
        "viewer": viewer_page(
            document, cited_id=_number(request, "chunk"), page=_number(request, "page"), back=back
        ),
        "search_url": search_back_url(back),
        "metadata": _metadata_rows(document.metadata or {}),
        "original_inline": document.mime_type in INLINE_CONTENT_TYPES,
    }
    return render(request, "documents/document.html", context)


def document_original(request: HttpRequest, pk: int) -> FileResponse:
    """The stored original: an attachment, or shown in place with `?inline=1` for PDFs and
    text (sandboxed either way)."""
    return original_file_response(_readable_document(request, pk), inline=wants_inline(request))

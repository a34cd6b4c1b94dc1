"""The document page and the download of its original, for those who may read it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from documents.apis import original_file_response
from documents.citations import pages_label
from documents.models import Chunk, Document
from documents.selectors import document_list_readable

# A line that starts a list item keeps its own line; other hard line breaks (wrapped
# text from PDFs and Markdown) are joined so the passage reads as prose.
_LIST_ITEM = re.compile(r"^\s*(?:[-*•·]|\d+[.)])\s")
_BLANK_LINE = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class ChunkView:
    chunk: Chunk
    paragraphs: list[list[str]]  # paragraphs, each a list of lines

    @property
    def pages(self) -> str:
        return pages_label(self.chunk.first_page, self.chunk.last_page)


def text_paragraphs(text: str) -> list[list[str]]:
    paragraphs = []
    for block in _BLANK_LINE.split(text):
        lines: list[str] = []
        for line in block.splitlines():
            if not line.strip():
                continue
            if lines and not _LIST_ITEM.match(line):
                lines[-1] = f"{lines[-1].rstrip()} {line.strip()}"
            else:
                lines.append(line.strip())
        if lines:
            paragraphs.append(lines)
    return paragraphs


def _readable_document(request: HttpRequest, pk: int) -> Document:
    """The document, or 404 when it does not exist or the caller may not read it."""
    documents = document_list_readable(user=request.user).select_related("collection")
    return get_object_or_404(documents.defer("extracted_text"), pk=pk)


def _chunks(document: Document) -> list[ChunkView]:
    chunks = document.chunks.order_by("ordinal").only(
        "id", "ordinal", "text", "first_page", "last_page", "heading_path", "document_id"
    )
    return [ChunkView(chunk, text_paragraphs(chunk.text)) for chunk in chunks]


def _metadata_rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
        for key, value in sorted(metadata.items())
    ]


def _cited_chunk_id(request: HttpRequest) -> int | None:
    value = request.GET.get("chunk", "")
    return int(value) if value.isdigit() else None


def document_detail(request: HttpRequest, pk: int) -> HttpResponse:
    document = _readable_document(request, pk)
    context = {
        "document": document,
        "chunks": _chunks(document),
        "cited_chunk_id": _cited_chunk_id(request),
        "metadata": _metadata_rows(document.metadata or {}),
    }
    return render(request, "documents/document.html", context)


def document_original(request: HttpRequest, pk: int) -> FileResponse:
    """The stored original as an attachment (never rendered in our origin)."""
    return original_file_response(_readable_document(request, pk))

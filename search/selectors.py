from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from documents.citations import display_title
from documents.models import Chunk, Collection
from documents.selectors import chunk_list_readable

NO_PUBLIC_COLLECTION_HINT = (
    "You searched anonymously, and no collection is public: sign in, or send a token, "
    "to search your own collections."
)

NEIGHBOR_FIELDS = [
    "id",
    "ordinal",
    "text",
    "char_start",
    "char_end",
    "first_page",
    "last_page",
]


def _neighbor(chunk: Chunk | None, position: str) -> dict[str, Any] | None:
    if chunk is None:
        return None
    return {
        "chunk_id": chunk.id,
        "ordinal": chunk.ordinal,
        "position": position,
        "text": chunk.text,
        "char_start": chunk.char_start,
        "char_end": chunk.char_end,
        "first_page": chunk.first_page,
        "last_page": chunk.last_page,
    }


def chunk_detail(*, chunk_id: int, user: AbstractBaseUser | AnonymousUser | None) -> dict[str, Any]:
    """A readable chunk with its citation and the chunks before and after it.

    Raises Chunk.DoesNotExist when it does not exist or the caller may not read it.
    """
    chunk = (
        chunk_list_readable(user=user)
        .select_related("document", "collection")
        .defer("bm25", "search_vector")
        .get(pk=chunk_id)
    )
    siblings = {
        c.ordinal: c
        for c in Chunk.objects.filter(
            document_id=chunk.document_id, ordinal__in=[chunk.ordinal - 1, chunk.ordinal + 1]
        ).only(*NEIGHBOR_FIELDS)
    }
    document = chunk.document
    return {
        "id": chunk.id,
        "ordinal": chunk.ordinal,
        "text": chunk.text,
        "token_count": chunk.token_count,
        "embedding": chunk.embedding,
        "citation": {
            "document_id": document.id,
            "document_title": display_title(document.title, document.source_name),
            "source_name": document.source_name,
            "collection": chunk.collection.slug,
            "first_page": chunk.first_page,
            "last_page": chunk.last_page,
            "char_start": chunk.char_start,
            "char_end": chunk.char_end,
            "heading_path": chunk.heading_path,
        },
        "previous": _neighbor(siblings.get(chunk.ordinal - 1), "before"),
        "next": _neighbor(siblings.get(chunk.ordinal + 1), "after"),
    }


def anonymous_hint(*, user: AbstractBaseUser | AnonymousUser | None) -> str | None:
    """For an anonymous caller when nothing is public: why every search finds nothing."""
    if user is not None and user.is_authenticated:
        return None
    if Collection.objects.filter(is_public=True).exists():
        return None
    return NO_PUBLIC_COLLECTION_HINT

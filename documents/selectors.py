"""Reads that decide what a caller may see. Every read path goes through these."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from documents.models import Chunk, Collection, Document

User = AbstractBaseUser | AnonymousUser


def collection_list_readable(*, user: User | None) -> QuerySet[Collection]:
    """Anonymous callers read public collections; signed-in users read all of them."""
    if user is not None and user.is_authenticated:
        return Collection.objects.all()
    return Collection.objects.filter(is_public=True)


def document_list_readable(*, user: User | None) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collection_list_readable(user=user))


def chunk_list_readable(*, user: User | None) -> QuerySet[Chunk]:
    return Chunk.objects.filter(collection__in=collection_list_readable(user=user))


def collection_ids_readable(*, user: User | None) -> list[int]:
    return list(collection_list_readable(user=user).values_list("id", flat=True))

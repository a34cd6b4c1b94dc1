"""Reads that decide what a caller may see and change. Every access path goes through
these, and the search statement applies the same rule in SQL (search/retrieval/_sql.py).

The rule:
- anyone reads `is_public` collections;
- a signed-in user reads collections they own or hold a grant on (directly or through
  one of their groups); `write` grants and ownership also allow changing documents;
- only the owner changes the collection itself (settings, deletion) and its grants;
- superusers read and change everything; management commands act with full access.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from documents.models import Chunk, Collection, CollectionGrant, Document

User = AbstractBaseUser | AnonymousUser


def _signed_in(user: User | None) -> bool:
    return user is not None and bool(user.is_authenticated)


def _granted(user: User, *, write: bool) -> Exists:
    grants = CollectionGrant.objects.filter(collection=OuterRef("pk")).filter(
        Q(user=user) | Q(group__user=user)
    )
    if write:
        grants = grants.filter(permission=CollectionGrant.Permission.WRITE)
    return Exists(grants)


def collection_list_readable(*, user: User | None) -> QuerySet[Collection]:
    if not _signed_in(user):
        return Collection.objects.filter(is_public=True)
    if user.is_superuser:
        return Collection.objects.all()
    return Collection.objects.filter(
        Q(is_public=True) | Q(owner=user) | _granted(user, write=False)
    )


def collection_list_granted(*, user: User | None) -> QuerySet[Collection]:
    """What the admin shows a staff member: collections they own or were granted.

    Public collections of others are readable on the site but not managed here.
    """
    if not _signed_in(user):
        return Collection.objects.none()
    if user.is_superuser:
        return Collection.objects.all()
    return Collection.objects.filter(Q(owner=user) | _granted(user, write=False))


def collection_list_writable(*, user: User | None) -> QuerySet[Collection]:
    if not _signed_in(user):
        return Collection.objects.none()
    if user.is_superuser:
        return Collection.objects.all()
    return Collection.objects.filter(Q(owner=user) | _granted(user, write=True))


def collection_can_write(*, user: User | None, collection: Collection) -> bool:
    return collection_list_writable(user=user).filter(pk=collection.pk).exists()


def collection_can_manage(*, user: User | None, collection: Collection) -> bool:
    """Change the collection's settings, delete it, manage its grants."""
    if not _signed_in(user):
        return False
    return bool(user.is_superuser) or collection.owner_id == user.pk


def document_list_readable(*, user: User | None) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collection_list_readable(user=user))


def chunk_list_readable(*, user: User | None) -> QuerySet[Chunk]:
    return Chunk.objects.filter(collection__in=collection_list_readable(user=user))


def collection_ids_readable(*, user: User | None) -> list[int]:
    return list(collection_list_readable(user=user).values_list("id", flat=True))


def grant_list(*, collection: Collection) -> QuerySet[CollectionGrant]:
    return collection.grants.select_related("user", "group")

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

from typing import TypeGuard

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from documents.embedding import ModelSpec
from documents.models import Chunk, Collection, CollectionGrant, Document
from ragsite.json_safety import check_text

# Who is asking: a signed-in user or an anonymous visitor. The one definition every
# module that checks access imports (search/page.py, search/rag/answer.py, ...).
User = AbstractBaseUser | AnonymousUser


def _signed_in(user: User | None) -> TypeGuard[AbstractBaseUser]:
    return user is not None and bool(user.is_authenticated)


def _is_superuser(user: AbstractBaseUser) -> bool:
    # `is_superuser` comes from PermissionsMixin, which a custom user model may lack.
    return bool(getattr(user, "is_superuser", False))


def _granted(user: AbstractBaseUser, *, write: bool) -> Exists:
    grants = CollectionGrant.objects.filter(collection=OuterRef("pk")).filter(
        Q(user=user) | Q(group__user=user)
    )
    if write:
        grants = grants.filter(permission=CollectionGrant.Permission.WRITE)
    return Exists(grants)


def collection_list_readable(*, user: User | None) -> QuerySet[Collection]:
    if not _signed_in(user):
        return Collection.objects.filter(is_public=True)
    if _is_superuser(user):
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
    if _is_superuser(user):
        return Collection.objects.all()
    return Collection.objects.filter(Q(owner=user) | _granted(user, write=False))


def collection_list_writable(*, user: User | None) -> QuerySet[Collection]:
    if not _signed_in(user):
        return Collection.objects.none()
    if _is_superuser(user):
        return Collection.objects.all()
    return Collection.objects.filter(Q(owner=user) | _granted(user, write=True))


def collection_can_write(*, user: User | None, collection: Collection) -> bool:
    return collection_list_writable(user=user).filter(pk=collection.pk).exists()


def collection_can_manage(*, user: User | None, collection: Collection) -> bool:
    """Change the collection's settings, delete it, manage its grants."""
    if not _signed_in(user):
        return False
    return _is_superuser(user) or collection.owner_id == user.pk


def document_list_readable(*, user: User | None) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collection_list_readable(user=user))


def chunk_list_readable(*, user: User | None) -> QuerySet[Chunk]:
    return Chunk.objects.filter(collection__in=collection_list_readable(user=user))


def grant_list(*, collection: Collection) -> QuerySet[CollectionGrant]:
    return collection.grants.select_related("user", "group")


def search_config_exists(*, name: str) -> bool:
    """Whether `name` is an installed PostgreSQL text-search configuration (a language)."""
    try:
        check_text(name)
    except ValueError:
        return False  # no configuration has such a name, and the driver cannot send it
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_ts_config WHERE cfgname = %s", [name])
        return cursor.fetchone() is not None


def collection_slug_taken(*, slug: str) -> bool:
    """Slugs are one namespace for everybody (they name collections in URLs and
    filters), so this looks at every collection, readable or not."""
    return Collection.objects.filter(slug=slug).exists()


def search_config_names() -> list[str]:
    """The installed text-search configurations, for a choice list."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT cfgname FROM pg_ts_config ORDER BY cfgname")
        return [name for (name,) in cursor.fetchall()]


def model_name_conflict(*, spec: ModelSpec, exclude_pk: int | None = None) -> str | None:
    """Why ``spec``'s name cannot be used, or None: a model name names one kind of vector
    across the installation (one index per name), so it cannot mean two specs."""
    others = Collection.objects.filter(embedding_model=spec.name)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    for other in others.only("slug", "embedding_dimensions", "embedding_backend"):
        if (other.embedding_dimensions, other.embedding_backend) != (
            spec.dimensions,
            spec.backend,
        ):
            return (
                f"model name {spec.name!r} is used by collection {other.slug!r} with "
                f"{other.embedding_dimensions} dimensions ({other.embedding_backend}); "
                "give this model another name"
            )
    return None

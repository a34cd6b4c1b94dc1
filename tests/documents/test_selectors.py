"""documents.selectors called directly: who reads, writes and manages what."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, Group

from documents.models import CollectionGrant
from documents.selectors import (
    chunk_list_readable,
    collection_can_manage,
    collection_can_write,
    collection_list_granted,
    collection_list_readable,
    collection_list_writable,
    collection_slug_taken,
    document_list_readable,
    search_config_exists,
    search_config_names,
)
from tests.factories import ChunkFactory, CollectionFactory, DocumentFactory, UserFactory


def _slugs(queryset: Any) -> set[str]:
    return set(queryset.values_list("slug", flat=True))


def test_the_access_rule(db: None) -> None:
    owner, reader, writer, member, stranger = (UserFactory.create() for _ in range(5))
    root = UserFactory.create(is_superuser=True)
    group = Group.objects.create(name="team")
    member.groups.add(group)
    private = CollectionFactory.create(slug="private", owner=owner)
    public = CollectionFactory.create(slug="public", owner=owner, is_public=True)
    CollectionGrant.objects.create(collection=private, user=reader, permission="read")
    CollectionGrant.objects.create(collection=private, user=writer, permission="write")
    CollectionGrant.objects.create(collection=private, group=group, permission="write")

    anonymous = AnonymousUser()
    assert _slugs(collection_list_readable(user=anonymous)) == {"public"}
    assert _slugs(collection_list_readable(user=None)) == {"public"}
    assert _slugs(collection_list_readable(user=stranger)) == {"public"}
    assert _slugs(collection_list_readable(user=reader)) == {"private", "public"}
    assert _slugs(collection_list_granted(user=reader)) == {"private"}  # not others' public
    assert _slugs(collection_list_granted(user=stranger)) == set()
    assert _slugs(collection_list_granted(user=anonymous)) == set()
    assert _slugs(collection_list_writable(user=reader)) == set()
    assert _slugs(collection_list_writable(user=writer)) == {"private"}
    assert _slugs(collection_list_writable(user=member)) == {"private"}  # through the group
    assert _slugs(collection_list_writable(user=owner)) == {"private", "public"}
    assert _slugs(collection_list_writable(user=root)) == {"private", "public"}
    assert collection_can_write(user=writer, collection=private)
    assert not collection_can_write(user=reader, collection=private)
    assert not collection_can_write(user=anonymous, collection=public)
    assert collection_can_manage(user=owner, collection=private)
    assert collection_can_manage(user=root, collection=private)
    assert not collection_can_manage(user=writer, collection=private)
    assert not collection_can_manage(user=anonymous, collection=public)


def test_documents_and_chunks_follow_their_collection(db: None) -> None:
    hidden = ChunkFactory.create(
        document=DocumentFactory.create(collection=CollectionFactory.create())
    )
    shown = ChunkFactory.create(
        document=DocumentFactory.create(collection=CollectionFactory.create(is_public=True))
    )
    assert list(document_list_readable(user=None)) == [shown.document]
    assert list(chunk_list_readable(user=None)) == [shown]
    root = UserFactory.create(is_superuser=True)
    assert set(chunk_list_readable(user=root)) == {hidden, shown}


def test_languages(db: None) -> None:
    names = search_config_names()
    assert {"english", "german", "simple"} <= set(names)
    assert search_config_exists(name="german")
    assert not search_config_exists(name="klingon")
    assert not search_config_exists(name="eng\x00lish")  # no database error either
    assert not search_config_exists(name="\ud800")


def test_slugs_are_one_namespace(db: None) -> None:
    CollectionFactory.create(slug="someone-elses", owner=UserFactory.create())
    assert collection_slug_taken(slug="someone-elses")
    assert not collection_slug_taken(slug="free")

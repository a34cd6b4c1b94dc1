"""documents.services called directly: what each write does and refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.files.base import ContentFile

from documents.models import Chunk, Collection, Document
from documents.services import (
    CollectionError,
    UploadError,
    collection_create,
    collection_create_named,
    collection_delete,
    collection_update,
    document_delete,
    document_replace_content,
    document_update,
    document_upload,
    safe_source_name,
)
from tests.factories import ChunkFactory, CollectionFactory, DocumentFactory, UserFactory


def test_collection_create_defaults_and_owner(db: None) -> None:
    owner = UserFactory.create()
    created = collection_create(owner=owner, name="Notes", slug="notes")
    assert (created.owner, created.search_config, created.is_public) == (owner, "english", False)
    anonymous = collection_create(owner=AnonymousUser(), name="Sys", slug="sys")
    assert anonymous.owner is None


def test_collection_create_refuses_an_unknown_language(db: None) -> None:
    with pytest.raises(CollectionError) as refused:
        collection_create(owner=None, name="x", slug="x", search_config="klingon")
    assert refused.value.field == "search_config" and "klingon" in refused.value.message
    with pytest.raises(CollectionError):
        collection_create(owner=None, name="x", slug="x", search_config="eng\x00lish")
    assert not Collection.objects.exists()


def test_collection_create_turns_a_slug_clash_into_an_error_not_a_crash(db: None) -> None:
    CollectionFactory.create(slug="taken", owner=UserFactory.create())
    # No check before the insert here: this is the path two racing requests take.
    with pytest.raises(CollectionError) as refused:
        collection_create(owner=UserFactory.create(), name="Mine", slug="taken")
    assert refused.value.field == "slug" and "not available" in refused.value.message
    assert Collection.objects.filter(slug="taken").count() == 1


def test_collection_create_named_derives_a_free_slug(db: None) -> None:
    first = collection_create_named(owner=None, name="  Lab Notes! ")
    second = collection_create_named(owner=None, name="Lab notes")
    nameless = collection_create_named(owner=None, name="???")
    assert (first.name, first.slug) == ("Lab Notes!", "lab-notes")
    assert second.slug == "lab-notes-2" and nameless.slug == "collection"


def test_collection_update_changes_fields_and_language(
    db: None, django_capture_on_commit_callbacks: Any
) -> None:
    collection = CollectionFactory.create()
    chunk = ChunkFactory.create(document=DocumentFactory.create(collection=collection))
    with django_capture_on_commit_callbacks() as callbacks:
        collection_update(collection=collection, name="Renamed")
    assert callbacks == []  # no language change, nothing to re-index
    with django_capture_on_commit_callbacks() as callbacks:
        collection_update(collection=collection, search_config="german")
    assert len(callbacks) == 1
    chunk.refresh_from_db()
    collection.refresh_from_db()
    assert chunk.search_config == "german" and collection.name == "Renamed"


def test_collection_update_refuses_bad_language_and_taken_slug(db: None) -> None:
    CollectionFactory.create(slug="other")
    collection = CollectionFactory.create(slug="mine")
    with pytest.raises(CollectionError):
        collection_update(collection=collection, search_config="klingon")
    with pytest.raises(CollectionError) as refused:
        collection_update(collection=collection, slug="other")
    assert refused.value.field == "slug"
    assert Collection.objects.get(pk=collection.pk).slug == "mine"


def test_collection_delete_removes_documents_and_files(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    document = DocumentFactory.create()
    path = Path(settings.MEDIA_ROOT) / document.original.name
    ChunkFactory.create(document=document)
    with django_capture_on_commit_callbacks(execute=True):
        collection_delete(collection=document.collection)
    assert not Document.objects.exists() and not Chunk.objects.exists() and not path.exists()


def test_document_upload_stores_and_deduplicates(collection: Collection) -> None:
    first = document_upload(
        collection=collection, user=None, text="Same words.", metadata={"a": 1}, enqueue=False
    )
    again = document_upload(collection=collection, user=None, text="Same words.  ", enqueue=False)
    assert not first.duplicate and again.duplicate
    assert again.document.pk == first.document.pk and first.document.metadata == {"a": 1}
    assert first.document.status == Document.Status.PENDING


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": "x", "file": ContentFile(b"x", name="x.txt")}, "either a file or a text"),
        ({"text": "   "}, "empty text"),
        ({"text": "x", "metadata": {"a": "\ud800"}}, "surrogate"),
        ({"text": "x", "metadata": {"a\x00": 1}}, "NUL"),
        ({"text": "x", "metadata": ["a"]}, "JSON object"),
    ],
)
def test_document_upload_refuses_before_storing(
    collection: Collection, settings: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(UploadError, match=message):
        document_upload(collection=collection, user=None, enqueue=False, **kwargs)
    assert not Document.objects.exists()
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_document_upload_refuses_a_file_over_the_limit(
    collection: Collection, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 10
    with pytest.raises(UploadError) as refused:
        document_upload(collection=collection, user=None, file=ContentFile(b"x" * 11, name="a.txt"))
    assert refused.value.status == 413


def test_document_update_checks_metadata(db: None) -> None:
    document = DocumentFactory.create(metadata={"a": 1})
    document_update(document=document, title="New")
    with pytest.raises(UploadError):
        document_update(document=document, metadata={"deep": [[[[[[[[[[[1]]]]]]]]]]]})
    document.refresh_from_db()
    assert (document.title, document.metadata) == ("New", {"a": 1})


def test_document_replace_content_swaps_the_file(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    document = DocumentFactory.create()
    old = Path(settings.MEDIA_ROOT) / document.original.name
    with django_capture_on_commit_callbacks(execute=True):
        document_replace_content(document=document, text="A new version of the words.")
    document.refresh_from_db()
    assert not old.exists() and document.status == Document.Status.PENDING
    assert document.original.read() == b"A new version of the words."


def test_document_delete_removes_the_file(
    db: None, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    document = DocumentFactory.create()
    path = Path(settings.MEDIA_ROOT) / document.original.name
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(document=document)
    assert not path.exists() and not Document.objects.exists()


def test_safe_source_name() -> None:
    assert safe_source_name("../../etc/pass\x00wd") == "passwd"
    assert safe_source_name("C:\\x\\report.pdf") == "report.pdf"
    assert safe_source_name("\ud800") == "upload"

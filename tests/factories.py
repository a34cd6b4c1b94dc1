"""factory_boy factories. Call `XFactory.create()`, not `XFactory()`: only `create` is typed
to return the model (the metaclass's `__call__` is untyped in factory_boy 3.3)."""

from __future__ import annotations

import hashlib
from typing import Any

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.files.base import ContentFile

from documents.models import Chunk, Collection, Document


class UserFactory(factory.django.DjangoModelFactory[User]):  # the default user model
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.django.Password("correct horse battery")


class CollectionFactory(factory.django.DjangoModelFactory[Collection]):
    class Meta:
        model = Collection

    name = factory.Sequence(lambda n: f"Collection {n}")
    slug = factory.Sequence(lambda n: f"collection-{n}")


def _text(document: Any) -> bytes:
    return f"Document {document.title}: its own words.".encode()


class DocumentFactory(factory.django.DjangoModelFactory[Document]):
    """A stored document with an original on disk; `status` defaults to ready (no chunks:
    use ChunkFactory, or the pipeline, for those)."""

    class Meta:
        model = Document

    collection = factory.SubFactory(CollectionFactory)
    title = factory.Sequence(lambda n: f"Document {n}")
    source_name = factory.LazyAttribute(lambda o: f"{o.title}.txt")
    mime_type = "text/plain"
    original = factory.LazyAttribute(lambda o: ContentFile(_text(o), name=o.source_name))
    size = factory.LazyAttribute(lambda o: len(_text(o)))
    sha256 = factory.LazyAttribute(lambda o: hashlib.sha256(_text(o)).hexdigest())
    status = Document.Status.READY


class ChunkFactory(factory.django.DjangoModelFactory[Chunk]):
    """A chunk without embedding or keyword weights (search will not find it)."""

    class Meta:
        model = Chunk

    document = factory.SubFactory(DocumentFactory)
    collection = factory.LazyAttribute(lambda o: o.document.collection)
    ordinal = factory.Sequence(lambda n: n)
    text = factory.Sequence(lambda n: f"Chunk {n} of some text.")
    char_start = 0
    char_end = factory.LazyAttribute(lambda o: len(o.text))
    search_config = factory.LazyAttribute(lambda o: o.collection.search_config)
    embedding_model = factory.LazyFunction(lambda: settings.EMBEDDING_MODEL_NAME)

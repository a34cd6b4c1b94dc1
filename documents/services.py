"""Writes: collections, documents and their processing."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from documents.embedding import EmbeddingError, ModelSpec, default_spec
from documents.extraction import ExtractionError, detect_mime_type
from documents.keyword_index import keyword_lock_collections, keyword_unindex_documents
from documents.lifecycle import document_requeue_if_failed
from documents.models import Chunk, Collection, CollectionGrant, Document, UploadBatch
from documents.progress import batch_create
from documents.queue import enqueue_documents, enqueue_keyword_rebuild, enqueue_vector_index_sync
from documents.selectors import (
    User,
    collection_slug_taken,
    model_name_conflict,
    search_config_exists,
)
from ragsite.json_safety import check_json

if TYPE_CHECKING:
    from django.contrib.auth.models import User as Account  # AUTH_USER_MODEL


def _account(user: User | None) -> Account | None:
    """The user to record as owner or uploader: nobody for anonymous callers."""
    account_model = get_user_model()
    if isinstance(user, account_model) and user.is_authenticated:
        return user
    return None


class CollectionError(ValueError):
    """A collection write we refuse; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _slug_unavailable(slug: str) -> CollectionError:
    # The same words whether or not the caller may read the collection holding the slug:
    # slugs are one namespace (like usernames), and this says nothing else about it.
    return CollectionError(f"the slug {slug!r} is not available; choose another", field="slug")


def _check_search_config(name: str) -> None:
    if not search_config_exists(name=name):
        raise CollectionError(
            f"unknown text-search language {name!r} (try english, simple, german, ...)",
            field="search_config",
        )


def collection_create(
    *,
    owner: User | None,
    name: str,
    slug: str,
    description: str = "",
    is_public: bool = False,
    search_config: str = "english",
    search_alpha: float | None = None,
    spec: ModelSpec | None = None,
) -> Collection:
    """``spec``: the embedding model (reembed.target_spec builds one), None: the settings'.
    A model that cannot load is refused here rather than failing every upload later."""
    _check_search_config(search_config)
    if spec and (conflict := model_name_conflict(spec=spec)):
        raise CollectionError(conflict, field="embedding")
    fields = {
        "description": description,
        "is_public": is_public,
        "search_config": search_config,
        "search_alpha": search_alpha,
    }
    collection = Collection(owner=_account(owner), name=name, slug=slug, **fields)
    try:
        collection.set_model_spec(spec or default_spec())
        with transaction.atomic():
            enqueue_vector_index_sync()  # its model's index, if it is the first to use it
            collection.save()
            return collection
    except EmbeddingError as exc:  # the model does not load, its server does not answer
        raise CollectionError(str(exc), field="embedding") from exc
    except IntegrityError as exc:
        # Two requests raced for one slug (the serializer's check passed for both).
        raise _slug_unavailable(slug) from exc


def collection_create_named(*, owner: User | None, name: str) -> Collection:
    """A collection from a name alone (the admin's upload form): the slug is derived from
    the name, with a number added while it is taken."""
    name = name.strip()[:200]
    base = slugify(name)[:90] or "collection"
    slug, number = base, 1
    while collection_slug_taken(slug=slug):
        number += 1
        slug = f"{base}-{number}"
    return collection_create(owner=owner, name=name or slug, slug=slug)


def collection_update(*, collection: Collection, **fields: Any) -> Collection:
    """Change a collection's settings. A new language re-parses its chunks for keyword
    search in the background (a task after commit), not inside this request."""
    if "search_config" in fields:
        _check_search_config(fields["search_config"])
    language_changed = (
        "search_config" in fields and fields["search_config"] != collection.search_config
    )
    try:
        with transaction.atomic():
            for name, value in fields.items():
                setattr(collection, name, value)
            collection.save()
            if language_changed:
                # Chunks carry their own copy of the language (search reads it per row);
                # the task rebuilds their keyword representation with it.
                Chunk.objects.filter(collection=collection).update(
                    search_config=collection.search_config
                )
                enqueue_keyword_rebuild(collection.pk)
    except IntegrityError as exc:
        raise _slug_unavailable(str(fields.get("slug", collection.slug))) from exc
    return collection


# --- Grants --------------------------------------------------------------------------


@transaction.atomic
def grant_set(
    *,
    collection: Collection,
    permission: str,
    user: AbstractUser | None = None,
    group: Group | None = None,
) -> CollectionGrant:
    """Give `user` or `group` read or write access; an existing grant is changed."""
    if (user is None) == (group is None):
        raise ValueError("a grant names either a user or a group")
    grant, _ = CollectionGrant.objects.update_or_create(
        collection=collection, user=user, group=group, defaults={"permission": permission}
    )
    return grant


def grant_revoke(*, grant: CollectionGrant) -> None:
    grant.delete()


# --- Documents -----------------------------------------------------------------------


class UploadError(Exception):
    """An upload we refuse; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class UploadResult:
    document: Document
    duplicate: bool


def normalize_text(text: str) -> str:
    """How JSON text uploads are stored and hashed: the same words hash the same."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.replace("\x00", "")
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def _check_metadata(metadata: dict[str, Any] | None) -> None:
    """Everything PostgreSQL would refuse is refused here, before a byte is stored."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise UploadError("metadata must be a JSON object")
    try:
        check_json(metadata, max_depth=settings.METADATA_MAX_DEPTH)
    except ValueError as exc:
        raise UploadError(f"metadata: {exc}") from exc


def _save_with_original(document: Document, source_name: str, data: bytes) -> None:
    """Store the original and save the row; if the row is not saved, neither is the file.

    A rollback of an enclosing transaction after this returns still leaves the file:
    files_sweep_orphaned (documents/stored_files.py) removes those.
    """
    stored = ""
    try:
        with transaction.atomic():
            document.original.save(source_name, ContentFile(data), save=False)
            stored = document.original.name
            document.save()
    except BaseException:
        if stored:
            document.original.storage.delete(stored)
        raise


def _read_upload(file: File, *, max_bytes: int) -> bytes:
    size = getattr(file, "size", None)
    if size is not None and size > max_bytes:
        raise UploadError(
            f"file too large: {size} bytes, the limit is {max_bytes} bytes", status=413
        )
    data = bytearray()
    for piece in file.chunks():
        data += piece
        if len(data) > max_bytes:  # size may be unknown or lie: stop reading at the limit
            raise UploadError(f"file too large: the limit is {max_bytes} bytes", status=413)
    return bytes(data)


def safe_source_name(name: str) -> str:
    """The user's file name for display: no path, no control characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or "upload"


def document_upload(
    *,
    collection: Collection,
    user: User | None,
    file: File | None = None,
    text: str | None = None,
    title: str = "",
    metadata: dict[str, Any] | None = None,
    source_name: str = "",
    enqueue: bool = True,
    batch: UploadBatch | None = None,
) -> UploadResult:
    """Store a file (or a text) as a pending document and queue it, after commit.

    The same content uploaded again into the same collection answers the existing
    document (queued again if it had failed). Files uploaded together share a `batch`
    (its progress is shown as one); without one, the document is a batch of its own.
    """
    if (file is None) == (text is None):
        raise UploadError("send either a file or a text")
    _check_metadata(metadata)
    if file is not None:
        data = _read_upload(file, max_bytes=settings.MAX_UPLOAD_BYTES)
        source_name = safe_source_name(source_name or file.name or "upload")
    else:
        data = normalize_text(text or "").encode()
        if len(data) > settings.MAX_UPLOAD_BYTES:
            raise UploadError(
                f"text too large: the limit is {settings.MAX_UPLOAD_BYTES} bytes", status=413
            )
        source_name = safe_source_name(source_name or f"{title or 'text'}.txt")
    if not data.strip():
        raise UploadError("empty file" if file is not None else "empty text")
    try:
        mime_type = detect_mime_type(data, source_name)
    except ExtractionError as exc:
        raise UploadError(str(exc)) from exc
    digest = hashlib.sha256(data).hexdigest()

    existing = Document.objects.filter(collection=collection, sha256=digest).first()
    if existing is not None:
        return UploadResult(document_requeue_if_failed(existing), duplicate=True)
    document = Document(
        collection=collection,
        title=title[:500],
        source_name=source_name,
        mime_type=mime_type,
        size=len(data),
        sha256=digest,
        metadata=metadata or {},
        created_by=_account(user),
        batch=batch or batch_create(),
    )
    try:
        _save_with_original(document, source_name, data)
    except IntegrityError:
        # The same content arrived at the same moment through another request.
        existing = Document.objects.get(collection=collection, sha256=digest)
        return UploadResult(document_requeue_if_failed(existing), duplicate=True)
    if enqueue:
        enqueue_documents([(document.pk, document.size)])
    return UploadResult(document, duplicate=False)


@transaction.atomic
def document_update(
    *, document: Document, title: str | None = None, metadata: dict[str, Any] | None = None
) -> Document:
    """Edit title and metadata; the chunks stay as they are (no re-ingestion)."""
    _check_metadata(metadata)
    if title is not None:
        document.title = title[:500]
    if metadata is not None:
        document.metadata = metadata
    document.save(update_fields=["title", "metadata", "updated"])
    return document


def document_replace_content(
    *, document: Document, file: File | None = None, text: str | None = None
) -> Document:
    """A new version of the document: same id, new original, processed again.

    Search keeps serving the old chunks until the new ones are complete.
    """
    if file is not None:
        data = _read_upload(file, max_bytes=settings.MAX_UPLOAD_BYTES)
        source_name = safe_source_name(file.name or document.source_name)
    else:
        data = normalize_text(text or "").encode()
        source_name = document.source_name
    if not data.strip():
        raise UploadError("empty file")
    try:
        mime_type = detect_mime_type(data, source_name)
    except ExtractionError as exc:
        raise UploadError(str(exc)) from exc
    digest = hashlib.sha256(data).hexdigest()
    clash = (
        Document.objects.filter(collection=document.collection_id, sha256=digest)
        .exclude(pk=document.pk)
        .first()
    )
    if clash is not None:
        raise UploadError(f"document {clash.pk} in this collection already has this content")
    old_file = document.original.name
    document.source_name = source_name
    document.mime_type = mime_type
    document.size = len(data)
    document.sha256 = digest
    document.status = Document.Status.PENDING
    document.error = ""
    document.attempts = 0
    document.retry_at = None
    with transaction.atomic():
        _save_with_original(document, source_name, data)
        transaction.on_commit(lambda: document.original.storage.delete(old_file))
        enqueue_documents([(document.pk, document.size)])
    return document


def document_delete(*, document: Document) -> None:
    """Delete a document, its chunks, its statistics and its stored original."""
    with transaction.atomic():
        locked = Document.objects.select_for_update().filter(pk=document.pk).first()
        if locked is None:
            return
        # Its attachments (documents/extraction/eml.py) go with it, by the cascade.
        family = [document, *Document.objects.filter(parent=document).order_by("pk")]
        keyword_unindex_documents(document_ids=[member.pk for member in family])
        names = [member.original.name for member in family if member.original.name]
        storage = document.original.storage
        document.delete()

        def delete_files() -> None:
            for name in names:
                storage.delete(name)

        transaction.on_commit(delete_files)


def collection_delete(*, collection: Collection) -> None:
    """Delete a collection with its documents, chunks, statistics and stored originals."""
    with transaction.atomic():
        # Documents, then keyword statistics, locked in the order a worker's finalize takes
        # them (documents/keyword_index.py): otherwise the two deadlock on term rows.
        names = list(
            Document.objects.select_for_update()
            .filter(collection=collection)
            .order_by("pk")
            .values_list("original", flat=True)
        )
        keyword_lock_collections(collection_ids=[collection.pk])
        storage = Document._meta.get_field("original").storage
        collection.delete()
        enqueue_vector_index_sync()  # its own index, or its model's if no one else uses it

        def delete_files() -> None:
            for name in names:
                if name:
                    storage.delete(name)

        transaction.on_commit(delete_files)

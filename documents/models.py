from __future__ import annotations

import uuid
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from pgvector.django import SparseVectorField, VectorField

from documents.citations import display_title
from documents.embedding import ModelSpec, default_spec
from documents.keyword_index import SPARSE_DIMENSIONS


class Collection(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_collections",
        help_text="Empty for system collections.",
    )
    is_public = models.BooleanField(default=False, help_text="Readable without signing in.")
    search_config = models.CharField(
        "text-search language",
        max_length=63,
        default="english",
        help_text="A PostgreSQL text-search configuration such as english, simple, german.",
    )
    # The model its vectors are made with (documents/embedding/spec.py), recorded when it
    # is created (the default from settings) and changed only by `reembed`.
    embedding_model = models.CharField(max_length=200, blank=True)
    embedding_backend = models.CharField(max_length=20, blank=True)
    embedding_location = models.CharField(
        max_length=500, blank=True, help_text="Model folder or server URL; empty: packaged."
    )
    embedding_dimensions = models.PositiveIntegerField(default=0)
    embedding_query_prefix = models.CharField(max_length=100, blank=True)
    embedding_passage_prefix = models.CharField(max_length=100, blank=True)
    embedding_max_tokens = models.PositiveIntegerField(default=0)
    # A model change in progress (documents/reembed.py): the spec being moved to, or null.
    reembed_target = models.JSONField(null=True, blank=True)
    reembed_requested = models.DateTimeField(null=True, blank=True)
    reembed_error = models.TextField(blank=True)
    # Hybrid score fusion's semantic share for this collection's chunks (alpha * semantic
    # + (1 - alpha) * keyword), tuned on its own judged queries: `manage.py evaluate
    # --sweep --save-alpha`. Null: SEARCH_ALPHA. A request's alpha overrides both.
    search_alpha = models.FloatField(
        "fusion alpha",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Hybrid search's semantic share for this collection (0: keyword only, "
        "1: semantic only); empty: the site default. `manage.py evaluate --sweep "
        "--save-alpha` sets it from judged queries.",
    )
    # Whether its chunks have a vector index of their own (documents/vector_index.py: a
    # big collection searched through the shared per-model index walks past the others').
    vector_index_dedicated = models.BooleanField(default=False, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(search_alpha__gte=0.0, search_alpha__lte=1.0)
                | models.Q(search_alpha__isnull=True),
                name="collection_search_alpha_0_1",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self.embedding_model:  # however it was created, it records a model
            self.set_model_spec(default_spec())
        super().save(*args, **kwargs)

    @property
    def model_spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.embedding_model,
            backend=self.embedding_backend,
            location=self.embedding_location,
            dimensions=self.embedding_dimensions,
            query_prefix=self.embedding_query_prefix,
            passage_prefix=self.embedding_passage_prefix,
            max_tokens=self.embedding_max_tokens,
        )

    def set_model_spec(self, spec: ModelSpec) -> None:
        self.embedding_model = spec.name
        self.embedding_backend = spec.backend
        self.embedding_location = spec.location
        self.embedding_dimensions = spec.dimensions
        self.embedding_query_prefix = spec.query_prefix
        self.embedding_passage_prefix = spec.passage_prefix
        self.embedding_max_tokens = spec.max_tokens


class CollectionGrant(models.Model):
    """Lets a user or a group read, or read and write, a collection it does not own.

    `write` includes `read`. Only the owner (or a superuser) manages grants.
    """

    class Permission(models.TextChoices):
        READ = "read"
        WRITE = "write"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="collection_grants",
    )
    group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="collection_grants",
    )
    permission = models.CharField(max_length=5, choices=Permission.choices, default=Permission.READ)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, group__isnull=True)
                    | models.Q(user__isnull=True, group__isnull=False)
                ),
                name="grant_to_user_or_group",
                violation_error_message="A grant names either a user or a group.",
            ),
            models.UniqueConstraint(
                fields=["collection", "user"],
                condition=models.Q(user__isnull=False),
                name="one_grant_per_user",
            ),
            models.UniqueConstraint(
                fields=["collection", "group"],
                condition=models.Q(group__isnull=False),
                name="one_grant_per_group",
            ),
        ]

    def __str__(self) -> str:
        grantee = f"user {self.user}" if self.user_id else f"group {self.group}"
        return f"{self.permission} on {self.collection} for {grantee}"


class UploadBatch(models.Model):
    """Documents uploaded together (one admin upload, one API upload, one `ingest` run):
    their progress is shown as one bar (documents/progress.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    # When a worker first claimed one of its documents: the batch's rate is measured
    # from here, so time spent waiting for a worker does not count.
    started = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"batch {self.pk}"


class WorkerBeat(models.Model):
    """When a worker (`manage.py qcluster`) was last seen running a task
    (documents/workers.py)."""

    name = models.CharField(max_length=100, primary_key=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} seen at {self.seen_at}"


def original_upload_to(instance: Document, filename: str) -> str:
    # Never the user's file name: it may hold "../" or control characters. The original
    # name is kept in `source_name`; only the (lower-case, short) extension survives.
    suffix = PurePosixPath(filename).suffix.lower()
    if not suffix[1:].isalnum() or len(suffix) > 10:
        suffix = ""
    return f"originals/{uuid.uuid4().hex}{suffix}"


class Document(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=500, blank=True)
    original = models.FileField(upload_to=original_upload_to, max_length=200)
    source_name = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=127, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    embedding_model = models.CharField(max_length=200, blank=True)
    # A model change (documents/reembed.py): the fingerprint of this document's chunks
    # staged for the collection's target model once all of them are, and their count.
    staged_fingerprint = models.CharField(max_length=64, blank=True)
    staged_chunk_count = models.PositiveIntegerField(default=0)
    chunk_count = models.PositiveIntegerField(default=0)
    # Citations point into this text: chunk.text == extracted_text[char_start:char_end].
    extracted_text = models.TextField(blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    processing_started = models.DateTimeField(null=True, blank=True)
    # Refreshed by the worker while it processes the document: a stale one means the
    # worker died (documents/lifecycle.py).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Set when an attempt failed and a retry is scheduled with back-off; not claimable
    # before then.
    retry_at = models.DateTimeField(null=True, blank=True)
    # While processing: the step and how far it got (chunks embedded, pages read), written
    # by documents/progress.py in small commits of their own so readers see it move.
    progress_phase = models.CharField(max_length=16, blank=True, default="")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    batch = models.ForeignKey(
        UploadBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="documents"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The e-mail message an attachment came in: deleting the message deletes it.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["collection", "sha256"], name="document_unique_content_per_collection"
            )
        ]
        indexes = [GinIndex(fields=["metadata"], name="document_metadata_gin")]

    def __str__(self) -> str:
        return display_title(self.title, self.source_name) or f"Document {self.pk}"


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    # Copied from the document so search can filter by collection without a join.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    first_page = models.PositiveIntegerField(null=True, blank=True)
    last_page = models.PositiveIntegerField(null=True, blank=True)
    heading_path = ArrayField(models.TextField(), default=list, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    # Untyped: each collection's model has its own dimensions; one HNSW expression index
    # per model (documents/vector_index.py) serves its chunks.
    embedding = VectorField(null=True, blank=True)
    embedding_model = models.CharField(max_length=200, blank=True)
    # Title and headings above the chunk that its text does not already start with;
    # indexed with the text for keyword search (the contextual header of the embedding).
    context = models.TextField(blank=True, default="")
    # A generated column cannot read the collection's language, so it is copied here.
    search_config = models.CharField(max_length=63, default="english")
    search_vector = SearchVectorField(null=True)
    # BM25 document-side term weights (see documents/keyword_index.py).
    bm25 = SparseVectorField(dimensions=SPARSE_DIMENSIONS, null=True)
    keyword_length = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document_id", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "ordinal"], name="chunk_unique_ordinal")
        ]
        indexes = [
            # collection_id inside the GIN index (btree_gin): the keyword leg's
            # `collection_id = X AND search_vector @@ q` is answered within one index,
            # skipping other collections' postings instead of reading them all and
            # ANDing with a btree (a 20k collection beside 1M chunks: docs/scaling.md).
            GinIndex(fields=["collection", "search_vector"], name="chunk_collection_search_gin"),
            models.Index(fields=["collection", "embedding_model"], name="chunk_collection_model"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal}"


class CollectionTermStats(models.Model):
    """Keyword statistics of one collection: chunk count and summed term counts (avgdl)."""

    collection = models.OneToOneField(
        Collection, on_delete=models.CASCADE, primary_key=True, related_name="term_stats"
    )
    chunk_count = models.BigIntegerField(default=0)
    total_length = models.BigIntegerField(default=0)
    # The average chunk length the stored BM25 weights were computed with.
    indexed_avgdl = models.FloatField(default=0)

    def __str__(self) -> str:
        return f"{self.collection_id}: {self.chunk_count} chunks"


class TermDocumentFrequency(models.Model):
    """In how many chunks of a collection a lexeme occurs (for BM25's IDF)."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+")
    lexeme = models.TextField()
    df = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "lexeme"], name="term_df_unique")
        ]

    def __str__(self) -> str:
        return f"{self.lexeme}: {self.df}"


class PendingChunk(models.Model):
    """Embedded chunks of a document being (re)processed, not yet visible to search.

    Batches land here as they are embedded, so a worker killed mid-document resumes
    where it stopped; when all are in, they replace the document's chunks in one
    transaction. ``fingerprint`` names the content, model and chunk settings they were
    made with: rows from another fingerprint are stale and discarded.
    """

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+")
    fingerprint = models.CharField(max_length=64)
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    first_page = models.PositiveIntegerField(null=True)
    last_page = models.PositiveIntegerField(null=True)
    heading_path = ArrayField(models.TextField(), default=list)
    token_count = models.PositiveIntegerField(default=0)
    context = models.TextField(blank=True, default="")
    embedding = VectorField()
    embedding_model = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["document", "fingerprint", "ordinal"], name="pending_chunk_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.ordinal} (pending)"

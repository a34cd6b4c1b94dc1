from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import UniqueValidator

from documents.embedding.spec import BACKENDS
from documents.models import Collection, CollectionGrant, Document
from documents.progress import batch_progress, document_progress
from documents.selectors import collection_list_readable, search_config_exists
from documents.workers import document_waits_for_worker, worker_missing
from ragsite.json_safety import check_json, check_text


def validate_search_config(value: str) -> None:
    """The name must be an installed PostgreSQL text-search configuration."""
    if not search_config_exists(name=value):
        raise serializers.ValidationError(
            f"unknown text-search language {value!r} (try english, simple, german, ...)"
        )


class EmbeddingSpecSerializer(serializers.Serializer):
    """A model to embed with; what is left out comes from settings (EMBEDDING_*), and the
    dimensions are asked of the model (which proves it loads or its server answers)."""

    model = serializers.CharField(max_length=200, help_text="The model's name (hub or server).")
    backend = serializers.ChoiceField(choices=BACKENDS, required=False)
    location = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Staff only: a model folder (onnx, torch) or a server's base URL (openai).",
    )
    dimensions = serializers.IntegerField(min_value=1, max_value=16_000, required=False)
    # Not trimmed: "query: " keeps its space.
    query_prefix = serializers.CharField(
        max_length=100, required=False, allow_blank=True, trim_whitespace=False
    )
    passage_prefix = serializers.CharField(
        max_length=100, required=False, allow_blank=True, trim_whitespace=False
    )
    max_tokens = serializers.IntegerField(min_value=16, max_value=32_768, required=False)


class CollectionEmbeddingSerializer(serializers.Serializer):
    model = serializers.CharField(source="embedding_model")
    backend = serializers.CharField(source="embedding_backend")
    dimensions = serializers.IntegerField(source="embedding_dimensions")
    query_prefix = serializers.CharField(source="embedding_query_prefix")
    passage_prefix = serializers.CharField(source="embedding_passage_prefix")
    max_tokens = serializers.IntegerField(source="embedding_max_tokens")


@extend_schema_field(CollectionEmbeddingSerializer)
class CollectionEmbeddingField(serializers.Field):
    """The collection's model (read); on create, an optional EmbeddingSpec (the default:
    the settings' model). A collection changes model only through .../reembed/."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", required=False, **kwargs)

    def to_representation(self, value: Any) -> Any:
        return CollectionEmbeddingSerializer(value).data

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if getattr(self.parent, "instance", None) is not None:
            raise serializers.ValidationError(
                "change the model with POST /api/v1/collections/{slug}/reembed/"
            )
        spec = EmbeddingSpecSerializer(data=data)
        spec.is_valid(raise_exception=True)
        return {"embedding": dict(spec.validated_data)}


class CollectionSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True, default=None)
    slug = serializers.SlugField(
        max_length=100,
        help_text="Names the collection in URLs and search filters; one namespace for all "
        "users, so it must not be taken by anyone's collection.",
        validators=[
            UniqueValidator(
                queryset=Collection.objects.all(),
                message="this slug is not available; choose another",
            )
        ],
    )
    # No default: a PUT that leaves it out keeps the collection's language (a create
    # without it gets english from the service).
    search_config = serializers.CharField(
        max_length=63,
        required=False,
        validators=[validate_search_config],
        help_text="PostgreSQL text-search configuration: english (default), simple, "
        "german, ...",
    )
    embedding = CollectionEmbeddingField(
        help_text="The embedding model; settable on create only (default: the settings')."
    )

    class Meta:
        model = Collection
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "is_public",
            "search_config",
            "search_alpha",
            "embedding",
            "owner",
            "created",
            "updated",
        ]
        read_only_fields = ["id", "owner", "created", "updated"]


class ProgressSerializer(serializers.Serializer):
    """While processing: the step (extracting, ocr, embedding) and how far it got."""

    phase = serializers.CharField()
    done = serializers.IntegerField(help_text="Chunks embedded (or pages read) so far.")
    total = serializers.IntegerField(help_text="Of this many; 0 while not yet known.")


class BatchSerializer(serializers.Serializer):
    """The documents uploaded together with this one (one upload, one `ingest` run)."""

    id = serializers.UUIDField()
    total = serializers.IntegerField()
    ready = serializers.IntegerField()
    failed = serializers.IntegerField()
    pending = serializers.IntegerField()
    processing = serializers.IntegerField()
    finished = serializers.BooleanField()
    eta_seconds = serializers.IntegerField(
        allow_null=True, help_text="Time left at the batch's rate so far; null until known."
    )


class WorkerNoticeSerializer(serializers.Serializer):
    worker_seen_at = serializers.DateTimeField(allow_null=True)
    message = serializers.CharField()


class DocumentSerializer(serializers.ModelSerializer):
    collection: serializers.SlugRelatedField[Collection] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    status_url = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    batch = serializers.SerializerMethodField()
    worker_notice = serializers.SerializerMethodField(
        help_text="Set while this document waits and no worker has run for a while."
    )

    class Meta:
        model = Document
        fields = [
            "id",
            "collection",
            "title",
            "source_name",
            "mime_type",
            "size",
            "sha256",
            "metadata",
            "status",
            "error",
            "attempts",
            "embedding_model",
            "chunk_count",
            "page_count",
            "created",
            "updated",
            "status_url",
            "progress",
            "batch",
            "worker_notice",
        ]
        read_only_fields = fields

    def get_status_url(self, document: Document) -> str:
        path = reverse("api-document-detail", args=[document.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def _cached(self, key: str, compute: Any) -> Any:
        # A list shows many documents of few batches: each fact is read once per answer.
        cache = self.context.setdefault("_progress_cache", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, document: Document) -> dict[str, Any] | None:
        return document_progress(document)

    @extend_schema_field(BatchSerializer(allow_null=True))
    def get_batch(self, document: Document) -> dict[str, Any] | None:
        if document.batch_id is None:
            return None
        # A batch holds the uploads of one action into one collection: whoever may
        # read this document may read its batch's counts.
        batch_id = document.batch_id
        found = self._cached(f"batch:{batch_id}", lambda: batch_progress(batch_id))
        return found.as_dict() if found else None

    @extend_schema_field(WorkerNoticeSerializer(allow_null=True))
    def get_worker_notice(self, document: Document) -> dict[str, Any] | None:
        if not document_waits_for_worker(document):
            return None
        notice = self._cached("worker", worker_missing)
        return notice.as_dict() if notice else None


class DocumentUploadResultSerializer(serializers.Serializer):
    """The answer to an upload (output only), built from services.UploadResult."""

    id = serializers.IntegerField(source="document.pk")
    status = serializers.CharField(source="document.status")
    status_url = serializers.SerializerMethodField()
    duplicate = serializers.BooleanField(
        help_text="The same content was already in the collection: this is that document."
    )
    document = DocumentSerializer()

    def get_status_url(self, result: Any) -> str:
        return DocumentSerializer(context=self.context).get_status_url(result.document)


class JSONObjectField(serializers.JSONField):
    """A JSON object; multipart forms send it as a string, so that is parsed too. What
    PostgreSQL cannot store (NUL, lone surrogates, NaN) and deep nesting are refused."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError) as exc:
                raise serializers.ValidationError("must be a JSON object") from exc
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        try:
            check_json(data, max_depth=settings.METADATA_MAX_DEPTH)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return data


class SlugLookupField(serializers.SlugRelatedField):
    """A SlugRelatedField that answers "invalid" for a value holding NUL or a lone
    surrogate, which the database lookup would otherwise fail on (a 500)."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            check_text(str(data))
        except ValueError:
            self.fail("invalid")
        return super().to_internal_value(data)


class ReadableCollectionField(SlugLookupField):
    """A collection slug, looked up only among what the caller may read: a collection
    they cannot see is reported as missing, never as forbidden (no existence leak)."""

    default_error_messages = {
        "does_not_exist": (
            "no collection with the slug {value!r}; create one with POST /api/v1/collections/"
        ),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="slug", queryset=Collection.objects.all(), **kwargs)

    def get_queryset(self) -> Any:
        request = self.context.get("request")
        return collection_list_readable(user=request.user if request else None)


class DocumentUploadSerializer(serializers.Serializer):
    collection = ReadableCollectionField(
        help_text="Slug of the collection to add the document to (needs write access).",
    )
    file = serializers.FileField(required=False, help_text="The document (multipart).")
    text = serializers.CharField(
        required=False, trim_whitespace=False, help_text="Plain text instead of a file."
    )
    title = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")
    metadata = JSONObjectField(required=False, default=dict)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError({"file": "send either a file or a text"})
        return attrs


class DocumentUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=500)
    metadata = JSONObjectField(required=False)


class DocumentContentSerializer(serializers.Serializer):
    file = serializers.FileField(required=False)
    text = serializers.CharField(required=False, trim_whitespace=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("file" in attrs) == ("text" in attrs):
            raise serializers.ValidationError({"file": "send either a file or a text"})
        return attrs


class GrantSerializer(serializers.ModelSerializer):
    """A grant names a user (by username) or a group (by name), not both."""

    user = SlugLookupField(
        slug_field="username",
        queryset=get_user_model().objects.all(),
        required=False,
        allow_null=True,
        help_text="Username to grant access to.",
    )
    group = SlugLookupField(
        slug_field="name",
        queryset=Group.objects.all(),
        required=False,
        allow_null=True,
        help_text="Group name to grant access to.",
    )

    class Meta:
        model = CollectionGrant
        fields = ["id", "user", "group", "permission", "created"]
        read_only_fields = ["id", "created"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (attrs.get("user") is None) == (attrs.get("group") is None):
            raise serializers.ValidationError({"user": "name either a user or a group"})
        return attrs


class DocumentListFilterSerializer(serializers.Serializer):
    """The list's query parameters, checked before they reach the database."""

    collection = serializers.SlugField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=Document.Status.choices, required=False)


class ReembedProgressSerializer(serializers.Serializer):
    """A collection's model change: its documents staged for the target so far."""

    staged = serializers.IntegerField(help_text="Ready documents staged for the target.")
    total = serializers.IntegerField(help_text="Ready documents in the collection.")
    target = serializers.CharField(
        allow_null=True, help_text="The model being moved to; null: no change in progress."
    )
    error = serializers.CharField(help_text="The last staging error (retried), or empty.")
    done = serializers.BooleanField(help_text="No change in progress (switched or none).")
    embedding = CollectionEmbeddingSerializer(help_text="The model search uses now.")

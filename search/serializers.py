from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ragsite.json_safety import check_json
from search.rerank import rerank_configured
from search.retrieval import FUSIONS, MODES, Filters

BIGINT_MAX = 2**63 - 1

FILTER_KEYS = {
    "collections",
    "documents",
    "metadata",
    "metadata_any",
    "created_after",
    "created_before",
    "mime_types",
}


class FiltersSerializer(serializers.Serializer):
    collections = serializers.ListField(
        child=serializers.SlugField(), required=False, max_length=100
    )
    documents = serializers.ListField(
        # Ids are bigint: a larger number would fail in PostgreSQL rather than match nothing.
        child=serializers.IntegerField(min_value=1, max_value=BIGINT_MAX),
        required=False,
        max_length=1000,
    )
    metadata = serializers.DictField(required=False, help_text="JSONB containment.")
    metadata_any = serializers.DictField(
        child=serializers.ListField(max_length=100),
        required=False,
        help_text="key: [v1, v2] matches documents whose metadata[key] is any of them.",
    )
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)
    mime_types = serializers.ListField(
        child=serializers.CharField(max_length=127), required=False, max_length=20
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Each key is one more condition in the search SQL: bound them.
        metadata_any = attrs.get("metadata_any") or {}
        keys = len(attrs.get("metadata") or {}) + len(metadata_any)
        if keys > settings.SEARCH_MAX_FILTER_KEYS:
            raise serializers.ValidationError(
                f"{keys} metadata keys; at most {settings.SEARCH_MAX_FILTER_KEYS} "
                "(metadata and metadata_any together)"
            )
        values = sum(len(v) for v in metadata_any.values())
        if values > settings.SEARCH_MAX_FILTER_VALUES:
            raise serializers.ValidationError(
                {
                    "metadata_any": f"{values} values; at most "
                    f"{settings.SEARCH_MAX_FILTER_VALUES} in all"
                }
            )
        return attrs


def _too_long() -> str:
    return f"longer than {settings.SEARCH_MAX_FILTER_CHARS} characters as JSON"


def _check_bounds(data: dict[str, Any]) -> None:
    """Depth first (a deep value would exhaust the stack of anything that walks it), then
    NUL and lone surrogates (neither can be sent to PostgreSQL), then size."""
    try:
        check_json(data, max_depth=settings.SEARCH_MAX_FILTER_DEPTH)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from exc
    if len(json.dumps(data)) > settings.SEARCH_MAX_FILTER_CHARS:
        raise serializers.ValidationError(_too_long())


@extend_schema_field(FiltersSerializer)
class JSONFiltersField(serializers.Field):
    """Filters as a JSON object (a JSON string in GET query parameters)."""

    def to_internal_value(self, data: Any) -> Filters:
        if isinstance(data, str):
            if len(data) > settings.SEARCH_MAX_FILTER_CHARS:
                raise serializers.ValidationError(_too_long())
            try:
                data = json.loads(data) if data.strip() else {}
            except (ValueError, RecursionError) as exc:
                raise serializers.ValidationError("must be a JSON object") from exc
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        _check_bounds(data)
        unknown = sorted(set(data) - FILTER_KEYS)
        if unknown:
            raise serializers.ValidationError(
                f"unknown filter {', '.join(unknown)}; known: {', '.join(sorted(FILTER_KEYS))}"
            )
        inner = FiltersSerializer(data=data)
        inner.is_valid(raise_exception=True)
        return Filters(**inner.validated_data)

    def to_representation(self, value: Any) -> Any:
        return value


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=settings.SEARCH_MAX_QUERY_CHARS)
    mode = serializers.ChoiceField(choices=MODES, default="hybrid")
    top_k = serializers.IntegerField(min_value=1, max_value=settings.SEARCH_MAX_TOP_K, default=10)
    offset = serializers.IntegerField(min_value=0, max_value=1000, default=0)
    filters = JSONFiltersField(required=False, help_text="See the Filters schema.")
    rrf_k = serializers.IntegerField(
        min_value=1, max_value=1000, default=settings.SEARCH_DEFAULTS["rrf_k"]
    )
    keyword_weight = serializers.FloatField(
        min_value=0, max_value=100, default=settings.SEARCH_DEFAULTS["keyword_weight"]
    )
    semantic_weight = serializers.FloatField(
        min_value=0, max_value=100, default=settings.SEARCH_DEFAULTS["semantic_weight"]
    )
    fusion = serializers.ChoiceField(
        choices=FUSIONS,
        default=settings.SEARCH_DEFAULTS["fusion"],
        help_text="hybrid: rrf fuses the legs by rank; score by min-max normalised scores, "
        "alpha * semantic + (1 - alpha) * keyword.",
    )
    alpha = serializers.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        allow_null=True,
        default=None,
        help_text="The semantic share with fusion=score (0: keyword only, 1: semantic only). "
        "Left out: each collection's own alpha where one was saved for it, else the site's "
        "default.",
    )
    keyword_depth = serializers.IntegerField(
        min_value=1, max_value=1000, default=settings.SEARCH_DEFAULTS["keyword_depth"]
    )
    semantic_depth = serializers.IntegerField(
        min_value=1, max_value=1000, default=settings.SEARCH_DEFAULTS["semantic_depth"]
    )
    min_score = serializers.FloatField(required=False, allow_null=True, default=None)
    mmr_lambda = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0, max_value=1
    )
    neighbors = serializers.IntegerField(min_value=0, max_value=3, default=0)
    group_by_document = serializers.BooleanField(default=False)
    rerank = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Rerank the first rerank_depth candidates with the configured reranker "
        "(RERANK_BACKEND); null: RERANK_DEFAULT. 400 when none is configured.",
    )
    rerank_depth = serializers.IntegerField(
        min_value=1,
        max_value=settings.RERANK_MAX_DEPTH,
        default=settings.RERANK_DEPTH,
        help_text="How many fused candidates the reranker reads (1..RERANK_MAX_DEPTH).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["query"].strip():
            raise serializers.ValidationError({"query": "must not be blank"})
        if attrs.get("rerank") and not rerank_configured():
            raise serializers.ValidationError({"rerank": "reranking is not configured"})
        attrs.setdefault("filters", Filters())
        if attrs["filters"] is None:
            attrs["filters"] = Filters()
        return attrs


class CappedTextField(serializers.CharField):
    """A chunk's text, cut to SEARCH_RESULT_MAX_CHARS (ending in "…" when cut): a chunk
    stored before chunks were bounded may be megabytes, and one response must not be."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "help_text", "The chunk's text, cut to SEARCH_RESULT_MAX_CHARS (then ending in …)."
        )
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str:
        text = str(value)
        limit = settings.SEARCH_RESULT_MAX_CHARS
        return text if len(text) <= limit else text[: limit - 1] + "…"


class NeighborSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    ordinal = serializers.IntegerField()
    position = serializers.ChoiceField(choices=["before", "after"])
    text = CappedTextField()
    char_start = serializers.IntegerField()
    char_end = serializers.IntegerField()
    first_page = serializers.IntegerField(allow_null=True)
    last_page = serializers.IntegerField(allow_null=True)


class CitationSerializer(serializers.Serializer):
    document_id = serializers.IntegerField()
    document_title = serializers.CharField()
    source_name = serializers.CharField()
    collection = serializers.CharField()
    first_page = serializers.IntegerField(allow_null=True)
    last_page = serializers.IntegerField(allow_null=True)
    char_start = serializers.IntegerField()
    char_end = serializers.IntegerField()
    heading_path = serializers.ListField(child=serializers.CharField())


class SearchResultSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    text = CappedTextField()
    snippet = serializers.CharField(help_text="HTML: query terms in <mark>, the rest escaped.")
    ordinal = serializers.IntegerField()
    citation = serializers.SerializerMethodField()
    metadata = serializers.DictField()
    score = serializers.FloatField(
        help_text="Hybrid: the fused score (fusion=score: alpha * semantic_norm + (1 - alpha) "
        "* keyword_norm; rrf: the sum of weight / (rrf_k + rank)); keyword: BM25; semantic: "
        "cosine similarity."
    )
    keyword_rank = serializers.IntegerField(allow_null=True)
    keyword_score = serializers.FloatField(allow_null=True)
    semantic_rank = serializers.IntegerField(allow_null=True)
    semantic_score = serializers.FloatField(allow_null=True)
    keyword_norm = serializers.FloatField(
        allow_null=True,
        help_text="fusion=score: the BM25 score scaled to [0, 1] among the keyword "
        "candidates (0 when the leg did not find it); null otherwise.",
    )
    semantic_norm = serializers.FloatField(
        allow_null=True,
        help_text="fusion=score: the cosine similarity scaled to [0, 1] among the semantic "
        "candidates (0 when the leg did not find it); null otherwise.",
    )
    alpha = serializers.FloatField(
        allow_null=True,
        help_text="fusion=score: the semantic share applied to this result (the request's, "
        "its collection's or the default); null otherwise.",
    )
    rerank_score = serializers.FloatField(
        allow_null=True, help_text="The reranker's score; null when it did not rank this one."
    )
    rank_before_rerank = serializers.IntegerField(
        allow_null=True, help_text="1-based rank in the fused order, before the rerank."
    )
    neighbors = NeighborSerializer(many=True)

    def get_citation(self, result: Any) -> dict[str, Any]:
        return CitationSerializer(result).data


SearchResultSerializer.get_citation.__annotations__["return"] = CitationSerializer


class TimingSerializer(serializers.Serializer):
    embedding_ms = serializers.FloatField(required=False)
    sql_ms = serializers.FloatField()
    rerank_ms = serializers.FloatField(required=False)
    total_ms = serializers.FloatField()


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    mode = serializers.CharField()
    total = serializers.IntegerField(help_text="Matching candidates before offset/top_k.")
    anonymous = serializers.BooleanField(
        help_text="Searched without credentials: public collections only."
    )
    hint = serializers.CharField(
        required=False,
        help_text="Why the search may find nothing, e.g. anonymous with no public collection.",
    )
    results = SearchResultSerializer(many=True)
    reranker = serializers.CharField(
        allow_null=True, help_text="The reranker that ordered the results; null: none did."
    )
    models = serializers.ListField(
        child=serializers.CharField(), help_text="The embedding models that served it."
    )
    notices = serializers.ListField(
        child=serializers.CharField(),
        help_text="What changed how it was served, e.g. a reranker that failed (then the "
        "fused order is returned).",
    )
    timing = TimingSerializer(source="timing_ms")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if data.get("hint") is None:
            data.pop("hint", None)  # only present when there is something to say
        return data


class ChunkSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    ordinal = serializers.IntegerField()
    text = CappedTextField()
    token_count = serializers.IntegerField()
    citation = CitationSerializer()
    previous = NeighborSerializer(allow_null=True)
    next = NeighborSerializer(allow_null=True)


class SimilarRequestSerializer(serializers.Serializer):
    top_k = serializers.IntegerField(min_value=1, max_value=settings.SEARCH_MAX_TOP_K, default=10)

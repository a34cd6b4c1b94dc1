from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from documents.citations import document_url
from search.rag.context import ORDERS, Passage
from search.serializers import CitationSerializer, SearchRequestSerializer


class ContextRequestSerializer(SearchRequestSerializer):
    """A search (same fields and limits) plus the context's budget and order."""

    offset = None  # type: ignore[assignment]  # the best passages have no next page
    max_tokens = serializers.IntegerField(
        min_value=64,  # room for a citation header and a useful piece of one passage
        max_value=settings.RAG_MAX_CONTEXT_TOKENS,
        default=settings.RAG_CONTEXT_TOKENS,
        help_text="Token budget of `context`, of which RAG_TOKEN_SAFETY_MARGIN is kept free.",
    )
    order = serializers.ChoiceField(
        choices=ORDERS,
        default="relevance",
        help_text="`relevance`: best passage first; `document`: grouped by document, "
        "in reading order.",
    )


class AskRequestSerializer(ContextRequestSerializer):
    stream = serializers.BooleanField(
        default=False, help_text="Answer as Server-Sent Events (text/event-stream)."
    )


class ContextCitationSerializer(CitationSerializer):
    """A search citation (document, pages, offsets) for a numbered passage."""

    number = serializers.IntegerField(help_text="Cited as [number] in the context.")
    chunk_id = serializers.IntegerField(help_text="The best-ranked chunk of the passage.")
    chunk_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="The chunks merged into the passage."
    )
    score = serializers.FloatField()
    text = serializers.CharField(
        help_text="The document's text from char_start to char_end, sanitised for prompting."
    )
    sanitized = serializers.ListField(
        source="flags",
        child=serializers.CharField(),
        help_text="What sanitising found: script, html, javascript, control, instructions.",
    )
    truncated = serializers.BooleanField(help_text="Cut short to fit the budget.")
    url = serializers.SerializerMethodField(help_text="The document page at the chunk.")

    def get_url(self, passage: Passage) -> str:
        return document_url(passage.document_id, passage.chunk_id)


class ContextResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    mode = serializers.CharField()
    # A declared field, not Serializer.context: DRF's metaclass takes fields out of the class.
    context = serializers.CharField(  # type: ignore[assignment]
        source="text", help_text="The numbered passages."
    )
    token_count = serializers.IntegerField()
    max_tokens = serializers.IntegerField()
    budget = serializers.IntegerField(help_text="max_tokens less the safety margin.")
    tokenizer = serializers.CharField()
    citations = ContextCitationSerializer(many=True)
    omitted = serializers.IntegerField(help_text="Passages left out for the budget.")
    anonymous = serializers.BooleanField(
        help_text="Retrieved without credentials: public collections only."
    )
    hint = serializers.CharField(
        required=False,
        help_text="Why the context may be empty, e.g. anonymous with no public collection.",
    )
    reranker = serializers.CharField(
        allow_null=True, help_text="The reranker that ordered the passages; null: none did."
    )
    notices = serializers.ListField(
        child=serializers.CharField(),
        help_text="What changed how it was retrieved, e.g. a reranker that failed.",
    )
    timing = serializers.DictField(source="timing_ms", child=serializers.FloatField())

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        if data.get("hint") is None:
            data.pop("hint", None)  # only present when there is something to say
        return data


class AskResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    answer = serializers.CharField(source="text")
    model = serializers.CharField(allow_blank=True)
    finish_reason = serializers.CharField(allow_null=True)
    citations = ContextCitationSerializer(many=True, help_text="The passages the answer cites.")
    retrieval = ContextResponseSerializer(source="context")
    timing = serializers.DictField(source="timing_ms", child=serializers.FloatField())

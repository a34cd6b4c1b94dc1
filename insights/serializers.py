from __future__ import annotations

from typing import Any

from rest_framework import serializers

from insights.models import Feedback, QueryLog


class QueryLogSerializer(serializers.ModelSerializer[QueryLog]):
    class Meta:
        model = QueryLog
        fields = [
            "id", "created", "endpoint", "collection_ids", "mode", "params", "query",
            "timing_ms", "total_ms", "result_count", "results", "model", "llm_model",
            "reranked", "answer",
        ]  # fmt: skip
        read_only_fields = fields


class FeedbackRequestSerializer(serializers.Serializer):
    query_log = serializers.IntegerField(
        min_value=1, help_text="The search's id (the X-Query-Log-Id response header)."
    )
    document = serializers.IntegerField(
        required=False, min_value=1, help_text="The result's document (or give `chunk`)."
    )
    chunk = serializers.IntegerField(
        required=False, min_value=1, help_text="The result's chunk; recorded by its document."
    )
    answer = serializers.BooleanField(default=False, help_text="Rate the answer instead.")
    useful = serializers.BooleanField(help_text="true: useful; false: not useful.")
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs["answer"] and not (attrs.get("document") or attrs.get("chunk")):
            raise serializers.ValidationError("Name the result (document or chunk) or answer.")
        return attrs


class FeedbackSerializer(serializers.ModelSerializer[Feedback]):
    class Meta:
        model = Feedback
        fields = ["id", "created", "query_log", "target", "document", "chunk_id", "useful",
                  "comment"]  # fmt: skip
        read_only_fields = fields

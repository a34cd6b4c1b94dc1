"""The query log and feedback in the admin, read only. Staff see the rows whose searched
collections they may all read; another user's query text (and answer) only superusers."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Case, F, QuerySet, TextField, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from documents.admin.access import StaffAccess
from insights.models import Feedback, QueryLog
from insights.selectors import query_log_list_visible, query_text_visible

HIDDEN = "(hidden: another user's search)"


class ReadOnly(StaffAccess):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(QueryLog)
class QueryLogAdmin(ReadOnly):
    list_display = ["created", "endpoint", "mode", "shown_query", "result_count", "total_ms"]
    list_filter = ["endpoint", "mode", "created"]
    date_hierarchy = "created"
    FIELDS = [
        "created", "user", "endpoint", "mode", "shown_query", "collection_ids", "params",
        "result_links", "result_count", "timing_ms", "total_ms", "model", "llm_model",
        "reranked", "shown_answer",
    ]  # fmt: skip
    fields = tuple(FIELDS)
    readonly_fields = tuple(FIELDS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[QueryLog]:
        readable = query_text_visible(viewer=request.user)
        return query_log_list_visible(user=request.user).annotate(
            shown_query_text=Case(
                When(readable, then=F("query")), default=Value(HIDDEN), output_field=TextField()
            ),
            shown_answer_text=Case(
                When(readable, then=F("answer")), default=Value(HIDDEN), output_field=TextField()
            ),
        )

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # Searching by text would reveal hidden queries one guess at a time.
        return ["query"] if request.user.is_superuser else []

    @admin.display(description="query")
    def shown_query(self, row: QueryLog) -> str:
        # Decided per row in get_queryset (the admin instance is shared by all requests).
        return str(getattr(row, "shown_query_text", HIDDEN)) or "(not kept: anonymous)"

    @admin.display(description="answer")
    def shown_answer(self, row: QueryLog) -> str:
        return str(getattr(row, "shown_answer_text", "")) if row.answer else ""

    @admin.display(description="results")
    def result_links(self, row: QueryLog) -> str:
        """Each result links to its document in the admin, best first."""
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                '<li><a href="{}">document {}</a>, chunk {}, score {}</li>',
                (
                    (
                        reverse("admin:documents_document_change", args=[r["document"]]),
                        r["document"],
                        r["chunk"],
                        r["score"],
                    )
                    for r in row.results
                ),
            ),
        )


@admin.register(Feedback)
class FeedbackAdmin(ReadOnly):
    list_display = ["created", "target", "useful", "document", "query_log"]
    list_filter = ["target", "useful"]
    FIELDS = [
        "created",
        "query_log",
        "target",
        "document",
        "chunk_id",
        "useful",
        "comment",
    ]
    fields = tuple(FIELDS)
    readonly_fields = tuple(FIELDS)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Feedback]:
        visible = query_log_list_visible(user=request.user)
        return Feedback.objects.filter(query_log__in=visible).select_related("document")

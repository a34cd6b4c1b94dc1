"""The query log and feedback in the admin, read only. Staff see the rows whose searched
collections they may all read; another user's query text (and answer) only superusers."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Case, F, QuerySet, TextField, Value, When
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from documents.admin.access import StaffAccess
from documents.selectors import collection_list_readable
from insights.admin_evaluation import FEEDBACK_ACTIONS, QUERY_LOG_ACTIONS
from insights.charts import bar_chart, line_chart
from insights.drift import Drift, drift_summary
from insights.models import Feedback, QueryLog
from insights.quality import Quality, quality_summary
from insights.selectors import query_log_list_visible, query_text_visible

HIDDEN = "(hidden: another user's search)"
QUALITY_DAYS = 30


def quality_charts(summary: Quality) -> dict[str, Any]:
    labels = [d.day.strftime("%b %d") for d in summary.days]
    days = [d.day for d in summary.days]
    latency: dict[str, list[float | None]] = {}
    for mode, points in summary.latency.items():
        by_day = {day: (p50, p95) for day, p50, p95 in points}
        latency[f"{mode} p50"] = [by_day.get(d, (None, None))[0] for d in days]
        latency[f"{mode} p95"] = [by_day.get(d, (None, None))[1] for d in days]
    return {
        "summary": summary,
        "queries_chart": bar_chart("Queries per day", labels, [d.queries for d in summary.days]),
        "latency_chart": line_chart("Latency per mode (ms)", labels, latency),
        "zero_chart": bar_chart(
            "Zero-result rate per day (%)",
            labels,
            [round(100 * d.zero / d.queries, 1) if d.queries else 0 for d in summary.days],
        ),
        "useful_chart": bar_chart(
            "Share of votes useful per day (%)",
            labels,
            [round(100 * d.useful / d.votes, 1) if d.votes else 0 for d in summary.days],
        ),
    }


def drift_chart(summary: Quality, drift: Drift) -> str:
    """Mean similarity of queries to their best match (in %), per collection and day."""
    if not drift.similarity:
        return ""
    labels = [d.day.strftime("%b %d") for d in summary.days]
    series = {
        name: [round(100 * by_day[d.day], 1) if d.day in by_day else None for d in summary.days]
        for name, by_day in list(drift.similarity.items())[:5]
    }
    return line_chart("Mean similarity to the best result (%)", labels, series)


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
    actions = QUERY_LOG_ACTIONS
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

    def get_urls(self) -> list[URLPattern]:
        quality = path(
            "quality/",
            self.admin_site.admin_view(self.quality_view),
            name="insights_quality",
        )
        return [quality, *super().get_urls()]

    def quality_view(self, request: HttpRequest) -> HttpResponse:
        """The "Search quality" page: charts and tables over the last QUALITY_DAYS days."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        summary = quality_summary(user=request.user, days=QUALITY_DAYS)
        readable = collection_list_readable(user=request.user)
        drift = drift_summary(
            collections=dict(readable.values_list("pk", "name")), days=QUALITY_DAYS
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Search quality",
            "opts": self.model._meta,
            **quality_charts(summary),
            "drift": drift,
            "drift_chart": drift_chart(summary, drift),
        }
        return TemplateResponse(request, "admin/insights/quality.html", context)

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
    actions = FEEDBACK_ACTIONS
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

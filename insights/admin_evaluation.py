"""Judgment sets in the admin: made and filled by upload (qrels, as `evaluate --collection`
reads them) or from the query log and feedback (the "add to judgment set" actions), and
each set's quality over time with its runs. Judgment sets are changed by superusers
(their queries may be other users'); staff see the sets of collections they may read."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from documents.admin.access import StaffAccess
from documents.selectors import collection_list_readable
from insights.charts import line_chart
from insights.judgments import (
    Added,
    JudgmentError,
    judgment_set_add_feedback,
    judgment_set_add_queries,
    judgment_set_store,
    judgments_parse,
)
from insights.models import EvaluationRun, Judgment, JudgmentSet, QueryLog
from insights.selectors import evaluation_history, query_text_visible


class JudgmentSetForm(forms.ModelForm):
    queries_file = forms.FileField(
        required=False,
        help_text='Queries, one JSON object per line: {"_id": "q1", "text": "..."}.',
    )
    qrels_file = forms.FileField(
        required=False,
        help_text="Judgments, tab-separated lines: query-id, corpus-id, score (1 relevant, "
        "2 highly relevant, 0 skipped); the corpus-id is a document's metadata `id` or its "
        "file name in the collection.",
    )

    class Meta:
        model = JudgmentSet
        fields = ["name", "collection", "scheduled"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        queries, qrels = data.get("queries_file"), data.get("qrels_file")
        self.parsed: tuple[dict[tuple[str, int], int], int] | None = None
        if bool(queries) != bool(qrels):
            raise forms.ValidationError("upload both files (queries and qrels), or neither")
        if queries and qrels and data.get("collection") is not None:
            try:
                self.parsed = judgments_parse(
                    collection=data["collection"], queries_file=queries, qrels_file=qrels
                )
            except JudgmentError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data


class JudgmentInline(admin.TabularInline):
    model = Judgment
    extra = 0
    fields = ["query", "document", "grade"]
    raw_id_fields = ["document"]


@admin.register(JudgmentSet)
class JudgmentSetAdmin(StaffAccess):
    form = JudgmentSetForm
    list_display = ["name", "collection", "scheduled", "judgment_count", "last_ndcg"]
    inlines = [JudgmentInline]
    fields = ["name", "collection", "scheduled", "queries_file", "qrels_file"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[JudgmentSet]:
        sets = super().get_queryset(request).select_related("collection")
        if request.user.is_superuser:
            return sets
        return sets.filter(collection__in=collection_list_readable(user=request.user))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    @admin.display(description="judgments")
    def judgment_count(self, obj: JudgmentSet) -> int:
        return obj.judgments.count()

    @admin.display(description="last hybrid nDCG@10")
    def last_ndcg(self, obj: JudgmentSet) -> str:
        run = obj.runs.filter(status=EvaluationRun.Status.DONE).first()
        value = run.ndcg("hybrid") if run else None
        return "–" if value is None else f"{value:.4f}"

    def save_model(self, request: HttpRequest, obj: JudgmentSet, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        if getattr(form, "parsed", None):
            judgments, skipped = form.parsed
            stored = judgment_set_store(judgment_set=obj, judgments=judgments)
            messages.success(
                request, f"{stored} judgments uploaded ({skipped} rows with score 0 skipped)."
            )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        found = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if found is not None:
            context.update(evaluation_charts(found))
        return super().change_view(request, object_id, form_url, extra_context=context)


FIGURES = ("ndcg@10", "recall@10", "recall@100", "mrr@10")


def evaluation_charts(judgment_set: JudgmentSet) -> dict[str, Any]:
    """Quality over time: nDCG@10 (in %) per mode, one point per run."""
    runs = evaluation_history(judgment_set=judgment_set)
    labels = [run.started.strftime("%b %d %H:%M") for run in runs]
    modes = sorted({mode for run in runs for mode in run.metrics})
    series = {
        mode: [None if run.ndcg(mode) is None else round(100 * run.ndcg(mode), 2) for run in runs]  # type: ignore[operator]
        for mode in modes
    }
    rows = [
        {
            "run": run,
            "mode": mode,
            "first": index == 0,
            **{key.replace("@", "_"): figures.get(key) for key in FIGURES},
        }
        for run in reversed(runs)
        for index, (mode, figures) in enumerate(run.metrics.items())
    ]
    return {
        "evaluation_runs": rows,
        "evaluation_modes": modes,
        "evaluation_chart": line_chart("nDCG@10 per mode (%)", labels, series) if runs else "",
    }


class AddToSetForm(forms.Form):
    judgment_set = forms.ModelChoiceField(queryset=JudgmentSet.objects.all(), label="Set")


def _added_message(request: HttpRequest, judgment_set: JudgmentSet, added: Added) -> None:
    messages.success(
        request,
        f"{added.added} judgments added to {judgment_set.name!r}; {added.skipped} skipped "
        "(not useful, no query text, or a document of another collection).",
    )


def add_to_judgment_set(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Any]
) -> HttpResponse | None:
    """The "add to judgment set" action of the query log and the feedback: a page to pick
    the set, then the rows become judgments (insights/judgments.py says how)."""
    if not request.user.is_superuser:
        messages.error(request, "Only superusers add to judgment sets.")
        return None
    form = AddToSetForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        judgment_set = form.cleaned_data["judgment_set"]
        if queryset.model is QueryLog:
            visible = queryset.filter(query_text_visible(viewer=request.user))
            added = judgment_set_add_queries(judgment_set=judgment_set, rows=visible)
        else:
            added = judgment_set_add_feedback(judgment_set=judgment_set, feedback=queryset)
        _added_message(request, judgment_set, added)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Add to a judgment set",
        "form": form,
        "queryset": queryset,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/insights/add_to_judgment_set.html", context)


add_to_judgment_set.short_description = "Add to a judgment set"  # type: ignore[attr-defined]
QUERY_LOG_ACTIONS = [add_to_judgment_set]
FEEDBACK_ACTIONS = [add_to_judgment_set]

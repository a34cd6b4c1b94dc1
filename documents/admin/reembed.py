"""The collections admin's model change: the "Change embedding model…" action (a form
for the spec, then documents/reembed.py's start, done by the workers) and the columns
that show each collection's model and the change's progress."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from documents.embedding.spec import BACKENDS
from documents.models import Collection
from documents.reembed import (
    ReembedError,
    collection_reembed_start,
    reembed_progress,
    target_spec,
)
from documents.selectors import collection_can_manage


class ReembedForm(forms.Form):
    model = forms.CharField(max_length=200, help_text="The model's name (hub or server name).")
    backend = forms.ChoiceField(
        choices=[("", "as settings (EMBEDDING_BACKEND)"), *((b, b) for b in BACKENDS)],
        required=False,
    )
    location = forms.CharField(
        max_length=500,
        required=False,
        help_text="Model folder (onnx, torch) or server base URL (openai); empty: the "
        "settings' for the same backend, the packaged model for another local one.",
    )
    dimensions = forms.IntegerField(
        min_value=1, max_value=16_000, required=False, help_text="Empty: asked of the model."
    )
    query_prefix = forms.CharField(
        max_length=100, required=False, strip=False, help_text='e.g. "query: " (e5, bge).'
    )
    passage_prefix = forms.CharField(max_length=100, required=False, strip=False)
    max_tokens = forms.IntegerField(
        min_value=16, required=False, help_text="The model's input window; empty: settings."
    )

    def spec_values(self) -> dict[str, Any]:
        """target_spec's arguments: an empty field means "as settings"."""
        values = {k: v for k, v in self.cleaned_data.items() if v not in ("", None)}
        return {"location": None, **values}


def _start(request: HttpRequest, collections: list[Collection], form: ReembedForm) -> bool:
    try:
        spec = target_spec(**form.spec_values())
    except ReembedError as exc:
        form.add_error(None, str(exc))
        return False
    for collection in collections:
        try:
            progress = collection_reembed_start(collection=collection, spec=spec)
        except ReembedError as exc:
            messages.error(request, f"{collection.slug}: {exc}")
            continue
        messages.success(
            request,
            f"{collection.slug}: moving to {spec.name} ({spec.dimensions} dimensions); "
            f"{progress.total} documents to stage. Search keeps the current model until "
            "all are staged.",
        )
    return True


@admin.action(description="Change embedding model…")
def change_embedding_model(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Collection]
) -> HttpResponse | None:
    collections = [c for c in queryset if collection_can_manage(user=request.user, collection=c)]
    if not collections:
        messages.error(request, "Only a collection's owner changes its model.")
        return None
    form = ReembedForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid() and _start(request, collections, form):
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Change the embedding model",
        "form": form,
        "collections": collections,
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/documents/collection/reembed.html", context)


def embedding_model_label(collection: Collection) -> str:
    if not collection.embedding_model:  # a new one: it gets the settings' model
        return "the settings' model (EMBEDDING_*)"
    return (
        f"{collection.embedding_model} ({collection.embedding_dimensions}, "
        f"{collection.embedding_backend})"
    )


def model_change_label(collection: Collection) -> str:
    """The target and how many documents are staged for it; "-" with no change."""
    if not collection.reembed_target:
        return "-"
    progress = reembed_progress(collection)
    text = f"to {progress.target}: staged {progress.staged}/{progress.total}"
    return f"{text}; last error: {progress.error}" if progress.error else text

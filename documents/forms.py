from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings

from documents.models import Collection
from documents.selectors import collection_list_writable


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data]
        files = [f for f in files if f]
        if not files:
            raise forms.ValidationError("Choose at least one file.")
        if len(files) > settings.MAX_FILES_PER_UPLOAD:
            raise forms.ValidationError(
                f"At most {settings.MAX_FILES_PER_UPLOAD} files at once; you chose {len(files)}."
            )
        for file in files:
            if file.size > settings.MAX_UPLOAD_BYTES:
                raise forms.ValidationError(
                    f"{file.name} is {file.size} bytes; the limit is {settings.MAX_UPLOAD_BYTES}."
                )
        return files


class DocumentUploadForm(forms.Form):
    collection = forms.ModelChoiceField(queryset=Collection.objects.none())
    files = MultipleFileField(
        help_text="PDF, Word (.docx), HTML, Markdown or text. Several at once are fine."
    )
    title = forms.CharField(
        required=False,
        max_length=500,
        help_text="Optional; used when a single file is uploaded (otherwise each file's own).",
    )
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Optional JSON object given to every file, e.g. {"team": "legal"}.',
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only collections the uploader may write to are offered (and accepted).
        self.fields["collection"].queryset = collection_list_writable(user=user)

    def clean_metadata(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("metadata") or ""
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("Metadata must be a JSON object.")
        return value

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.forms.fields import InvalidJSONInput

from documents.models import Collection, Document
from documents.selectors import collection_list_writable, search_config_names
from ragsite.json_safety import check_json


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
    collection = forms.ModelChoiceField(queryset=Collection.objects.none(), required=False)
    new_collection = forms.CharField(
        required=False,
        max_length=200,
        label="Or a new collection",
        help_text="Name of a collection to create for these files (you will own it).",
    )
    # The form metaclass moves fields out of the class, so this does not replace
    # BaseForm.files at run time; the type checker cannot know that.
    files = MultipleFileField(  # type: ignore[assignment]
        help_text=(
            "PDF (scanned too), Word, PowerPoint, Excel/CSV, OpenDocument, EPUB, RTF, e-mail "
            "(.eml), images, HTML, Markdown or text. Several at once are fine."
        )
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
        field = self.fields["collection"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = collection_list_writable(user=user)

    def clean_metadata(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("metadata") or ""
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("Metadata must be a JSON object.")
        return _storable(value)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        chosen = cleaned.get("collection") is not None
        named = bool((cleaned.get("new_collection") or "").strip())
        if chosen == named and "collection" not in self.errors:
            self.add_error(
                "collection",
                "Choose a collection or name a new one."
                if not chosen
                else "Choose a collection or name a new one, not both.",
            )
        return cleaned


def _storable(value: Any) -> Any:
    """A form error, before anything is stored, for JSON that PostgreSQL refuses."""
    try:
        check_json(value, max_depth=settings.METADATA_MAX_DEPTH)
    except ValueError as exc:
        raise forms.ValidationError(f"Metadata: {exc}") from exc
    return value


class StorableJSONField(forms.JSONField):
    """The admin's JSON field, refusing what PostgreSQL cannot store and answering a
    form error for input nested past the parser's recursion limit."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError as exc:
            raise forms.ValidationError("Nested too deeply.") from exc

    def validate(self, value: Any) -> None:
        super().validate(value)
        _storable(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Redisplay refused input as the user typed it: decoded, a lone surrogate could
        # not even be encoded into the error page.
        value = super().bound_data(data, initial)
        try:
            check_json(value, max_depth=settings.METADATA_MAX_DEPTH)
        except (ValueError, RecursionError):
            return InvalidJSONInput(data)
        return value


class DocumentChangeForm(forms.ModelForm):
    metadata = StorableJSONField(required=False)

    class Meta:
        model = Document
        fields = ["title", "metadata"]

    def clean_metadata(self) -> Any:
        value = self.cleaned_data.get("metadata")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Metadata must be a JSON object.")
        return value


class CollectionAdminForm(forms.ModelForm):
    """Offers the installed text-search languages, so only a valid one can be chosen."""

    search_config = forms.ChoiceField(
        label="Text-search language",
        initial="english",
        help_text="How words are stemmed for keyword search. Changing it re-indexes the "
        "collection's chunks in the background.",
    )

    class Meta:
        model = Collection
        fields = [
            "name",
            "slug",
            "description",
            "owner",
            "is_public",
            "search_config",
            "search_alpha",
        ]
        error_messages = {
            # The same words whether or not the staff member may see the collection
            # that holds it (see README: slugs are one namespace).
            "slug": {"unique": "This slug is not available; choose another."},
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = search_config_names()
        current = self.instance.search_config if self.instance.pk else None
        if current and current not in names:  # dropped from the server: still shown
            names.append(current)
        field = self.fields["search_config"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(name, name) for name in names]

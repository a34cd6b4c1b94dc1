from __future__ import annotations

from typing import Any

from django import forms


class FeedbackForm(forms.Form):
    query_log = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    document = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)
    answer = forms.BooleanField(required=False, widget=forms.HiddenInput)
    useful = forms.ChoiceField(choices=[("yes", "Useful"), ("no", "Not useful")])
    next = forms.CharField(required=False, max_length=4000, widget=forms.HiddenInput)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("answer") and not data.get("document"):
            raise forms.ValidationError("Say which result the vote is for.")
        return data

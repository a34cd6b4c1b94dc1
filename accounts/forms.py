from __future__ import annotations

from django import forms
from django.utils import timezone


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    expires = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="Optional. Leave empty for a token that does not expire.",
    )

    def clean_expires(self) -> object:
        value = self.cleaned_data.get("expires")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return value

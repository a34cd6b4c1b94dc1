from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest
from django.utils import timezone

from accounts.lockout import lockout_message, password_failed, password_locked


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


class LockoutMixin:
    """Sign-in forms that count failures (accounts.lockout) and refuse, even the right
    password, once the address or username used up its budget. `retry_after` (seconds)
    tells the view to answer 429."""

    request: HttpRequest | None
    retry_after: int | None = None

    def clean(self) -> dict[str, Any]:
        username = str(self.data.get("username", ""))[:150]  # type: ignore[attr-defined]
        verdict = password_locked(request=self.request, username=username)
        if verdict is None:
            try:
                return super().clean()  # type: ignore[misc]
            except forms.ValidationError:
                verdict = password_failed(request=self.request, username=username)
                if verdict is None:
                    raise
        self.retry_after = verdict.retry_after
        raise forms.ValidationError(lockout_message(verdict), code="locked")


class LoginForm(LockoutMixin, AuthenticationForm):
    pass


class AdminLoginForm(LockoutMixin, AdminAuthenticationForm):
    pass

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import LoginForm, TokenForm
from accounts.models import ApiToken
from accounts.services import token_create, token_revoke


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    user = cast(User, request.user)  # login_required: never anonymous here
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        _, secret = token_create(user=user, **form.cleaned_data)
        form = TokenForm()
    tokens = ApiToken.objects.filter(user=user)
    return render(
        request, "accounts/tokens.html", {"form": form, "tokens": tokens, "secret": secret}
    )


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = cast(User, request.user)  # login_required: never anonymous here
    token_revoke(token=get_object_or_404(ApiToken, pk=pk, user=user))
    return redirect("token-list")


class LoginView(auth_views.LoginView):
    """Django's sign-in page; too many failures answer 429 (accounts.lockout)."""

    authentication_form = LoginForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        if form.retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.retry_after)
        return response

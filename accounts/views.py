from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import TokenForm
from accounts.models import ApiToken
from accounts.services import token_create, token_revoke


@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    secret = None
    if request.method == "POST" and form.is_valid():
        _, secret = token_create(user=request.user, **form.cleaned_data)
        form = TokenForm()
    tokens = ApiToken.objects.filter(user=request.user)
    return render(
        request, "accounts/tokens.html", {"form": form, "tokens": tokens, "secret": secret}
    )


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token_revoke(token=get_object_or_404(ApiToken, pk=pk, user=request.user))
    return redirect("token-list")

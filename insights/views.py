"""The search page's feedback form without JavaScript: record the vote, go back."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.lockout import client_address
from insights.forms import FeedbackForm
from insights.services import FeedbackError, feedback_record
from ragsite.ratelimit import rate_parse, ratelimit_hit

SEARCH_URL = "/"


def _back(request: HttpRequest, *, log_id: int, voted: str, anchor: str) -> str:
    """The search the vote came from; `logged` tells the page it is the same search (it
    logs no second row), `voted` which vote to show (anonymous votes are not looked up)."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ) or not target.startswith("/"):
        target = SEARCH_URL
    target = target.split("#", 1)[0]
    target = re.sub(r"[?&](logged|voted)=[^&]*", "", target)
    target += ("&" if "?" in target else "?") + f"logged={log_id}&voted={voted}"
    return target + anchor


def _throttled(request: HttpRequest) -> bool:
    rate = rate_parse(settings.FEEDBACK_THROTTLE_ANON)
    if request.user.is_authenticated or rate is None:
        return False
    verdict = ratelimit_hit(scope="feedback-anon", ident=client_address(request), rate=rate)
    return not verdict.allowed


@require_POST
def feedback_page(request: HttpRequest) -> HttpResponse:
    if _throttled(request):
        return render(request, "accounts/throttled.html", {"retry_after": 60}, status=429)
    form = FeedbackForm(request.POST)
    if not form.is_valid():
        return render(request, "insights/feedback_error.html", {"form": form}, status=400)
    values = form.cleaned_data
    try:
        feedback_record(
            user=request.user,
            query_log_id=values["query_log"],
            useful=values["useful"] == "yes",
            document_id=values.get("document"),
            answer=values["answer"],
        )
    except FeedbackError as exc:
        form.add_error(None, str(exc))
        return render(request, "insights/feedback_error.html", {"form": form}, status=400)
    key = "answer" if values["answer"] else str(values.get("document"))
    voted = f"{key}:{values['useful']}"
    return HttpResponseRedirect(
        _back(request, log_id=values["query_log"], voted=voted, anchor=f"#feedback-{key}")
    )

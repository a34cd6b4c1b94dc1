from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from insights.recording import page_logged
from search.page import search_page_context


@require_http_methods(["GET", "HEAD", "POST"])
def search_page(request: HttpRequest) -> HttpResponse:
    """The search page; its whole state is in the GET parameters (q, mode, collection,
    page), so a search can be bookmarked and shared. Posting it (the Ask button without
    JavaScript) adds the language model's answer to the same search."""
    ask = request.method == "POST"
    context = search_page_context(data=request.GET, user=request.user, ask=ask)
    page_logged(request=request, context=context)  # sets query_log_id for feedback forms
    return render(request, "search/search.html", context)

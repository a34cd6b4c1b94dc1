from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from search.page import search_page_context


def search_page(request: HttpRequest) -> HttpResponse:
    """The search page; its whole state is in the GET parameters (q, mode, collection,
    page), so a search can be bookmarked and shared."""
    context = search_page_context(data=request.GET, user=request.user)
    return render(request, "search/search.html", context)

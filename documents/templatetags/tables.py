"""`{% card_table card.result as table %}` on the search page: a result whose chunk holds
table rows shows them as a table (documents/table_view.py) instead of a text snippet."""

from __future__ import annotations

from typing import Any

from django import template

from documents.highlight import query_terms
from documents.table_view import TableView, card_table

register = template.Library()


@register.simple_tag(takes_context=True)
def result_table(context: Any, result: Any) -> TableView | None:
    terms = query_terms(str(context.get("query") or ""))
    return card_table(result.text, result.heading_path, terms)

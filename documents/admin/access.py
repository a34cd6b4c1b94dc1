"""Who may open the admin's pages, and the collection filter they share."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest

from documents.selectors import collection_list_granted
from ragsite.json_safety import check_text


class StaffAccess(admin.ModelAdmin):
    """Any active staff member may open these admin pages; what they see and change is
    decided per collection by ownership and grants (documents/selectors.py), not by
    Django's model permissions. Superusers see everything."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Django hands any lookup on a local field to the database as is: a regex
        # PostgreSQL cannot compile, or a NUL it cannot receive, would be a 500.
        if lookup.endswith(("__regex", "__iregex")):
            return False  # a 400; nothing in the admin links to one
        try:
            check_text(value)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc  # the usual "?e=1" answer
        return bool(super().lookup_allowed(lookup, value, request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        try:
            check_text(search_term)
        except ValueError as exc:
            raise IncorrectLookupParameters(exc) from exc
        return super().get_search_results(request, queryset, search_term)


class GrantedCollectionFilter(admin.SimpleListFilter):
    """The collection filter lists only collections the staff member may see."""

    def __init__(self, request: HttpRequest, params: Any, model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        value = self.value()
        if value and not value.isdigit():
            raise IncorrectLookupParameters(f"collection id {value!r} is not a number")

    title = "collection"
    parameter_name = "collection__id__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(c.pk), c.name) for c in collection_list_granted(user=request.user)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value:
            return queryset.filter(collection_id=int(value))
        return queryset

"""Collections in the admin: written through the services, like the API; grants are
managed inline by the owner."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from documents.admin.access import StaffAccess
from documents.admin.reembed import (
    change_embedding_model,
    embedding_model_label,
    model_change_label,
)
from documents.forms import CollectionAdminForm
from documents.models import Collection, CollectionGrant
from documents.selectors import collection_can_manage, collection_list_granted
from documents.services import (
    CollectionError,
    collection_create,
    collection_delete,
    collection_update,
)


class GrantInline(admin.TabularInline):
    model = CollectionGrant
    fields = ["user", "group", "permission", "created"]
    readonly_fields = ["created"]
    extra = 0

    def _manages(self, request: HttpRequest, obj: Any) -> bool:
        return obj is not None and collection_can_manage(user=request.user, collection=obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._manages(request, obj)


@admin.register(Collection)
class CollectionAdmin(StaffAccess):
    form = CollectionAdminForm
    list_display = [
        "name",
        "slug",
        "is_public",
        "search_config",
        "search_alpha",
        "embedding",
        "model_change",
        "owner",
        "created",
    ]
    list_filter = ["is_public", "search_config"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created", "updated", "embedding", "model_change"]
    inlines = [GrantInline]
    actions = [change_embedding_model]

    @admin.display(description="embedding model")
    def embedding(self, obj: Collection) -> str:
        return embedding_model_label(obj)

    @admin.display(description="model change")
    def model_change(self, obj: Collection) -> str:
        return model_change_label(obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Collection]:
        return collection_list_granted(user=request.user).select_related("owner")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if request.user.is_superuser:
            return self.readonly_fields
        return [*self.readonly_fields, "owner"]  # the creator owns it; only superusers move it

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return collection_can_manage(user=request.user, collection=obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Collection, form: Any, change: bool) -> None:
        """Through the services, like the API: a new language re-indexes the chunks, and
        a new collection is owned by its creator unless a superuser chose an owner."""
        values = {name: form.cleaned_data[name] for name in form.fields if name != "owner"}
        if "owner" in form.fields:
            values["owner"] = form.cleaned_data["owner"]
        if change:
            # `obj` already holds the form's values; the service compares with the stored row.
            stored = Collection.objects.get(pk=obj.pk)
            changed = {name: values[name] for name in form.changed_data if name in values}
            saved = collection_update(collection=stored, **changed)
        else:
            owner = values.pop("owner", None) or request.user
            saved = collection_create(owner=owner, **values)
        for field in Collection._meta.concrete_fields:  # the inlines save against `obj`
            setattr(obj, field.attname, getattr(saved, field.attname))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # The form's own check passes for two admins saving one slug at once; the loser's
        # save fails in the service. Say why on the form page instead of a 500 (the admin's
        # transaction is rolled back, nothing was saved).
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except CollectionError as exc:
            messages.error(request, f"Not saved: {exc.message}")
            return HttpResponseRedirect(request.get_full_path())

    def delete_model(self, request: HttpRequest, obj: Collection) -> None:
        collection_delete(collection=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Collection]) -> None:
        for collection in queryset:
            if collection_can_manage(user=request.user, collection=collection):
                collection_delete(collection=collection)

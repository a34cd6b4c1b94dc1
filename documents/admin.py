from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from documents.citations import pages_label
from documents.forms import CollectionAdminForm, DocumentChangeForm, DocumentUploadForm
from documents.lifecycle import DocumentStateError, document_reembed, document_retry
from documents.models import Chunk, Collection, CollectionGrant, Document
from documents.selectors import (
    collection_can_manage,
    collection_can_write,
    collection_list_granted,
    collection_list_writable,
)
from documents.services import (
    CollectionError,
    UploadError,
    collection_create,
    collection_create_named,
    collection_delete,
    collection_update,
    document_delete,
    document_upload,
    safe_source_name,
)
from ragsite.json_safety import check_text


class StaffAccess(admin.ModelAdmin):
    """Any active staff member may open these admin pages; what they see and change is
    decided per collection by ownership and grants (documents/selectors.py), not by
    Django's model permissions. Superusers see everything."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def lookup_allowed(
        self, lookup: str, value: str, request: HttpRequest | None = None
    ) -> bool:
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
    list_display = ["name", "slug", "is_public", "search_config", "owner", "created"]
    list_filter = ["is_public", "search_config"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created", "updated"]
    inlines = [GrantInline]

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


CHUNK_FIELDS = ("ordinal", "pages", "heading", "token_count", "embedding_model", "preview")


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = CHUNK_FIELDS
    readonly_fields = CHUNK_FIELDS
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chunk]:
        return super().get_queryset(request).defer("embedding", "bm25", "search_vector")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="pages")
    def pages(self, chunk: Chunk) -> str:
        return pages_label(chunk.first_page, chunk.last_page) or "–"

    @admin.display(description="heading path")
    def heading(self, chunk: Chunk) -> str:
        return " › ".join(chunk.heading_path)

    @admin.display(description="text")
    def preview(self, chunk: Chunk) -> str:
        return chunk.text[:200] + ("…" if len(chunk.text) > 200 else "")


def _each(
    transition: Callable[..., Document], documents: list[Document]
) -> tuple[int, int]:
    """Apply a lifecycle transition to each document: (done, refused by its status)."""
    done = refused = 0
    for document in documents:
        try:
            transition(document=document)
            done += 1
        except DocumentStateError:
            refused += 1
    return done, refused


DOCUMENT_READONLY_FIELDS = [
    "collection",
    "original_link",
    "source_name",
    "mime_type",
    "size",
    "sha256",
    "status",
    "error",
    "attempts",
    "embedding_model",
    "chunk_count",
    "page_count",
    "created",
    "updated",
    "created_by",
]


@admin.register(Document)
class DocumentAdmin(StaffAccess):
    change_list_template = "admin/documents/document/change_list.html"
    list_display = [
        "__str__",
        "collection",
        "status_badge",
        "short_error",
        "chunk_count",
        "embedding_model",
        "created",
    ]
    list_filter = ["status", GrantedCollectionFilter, "mime_type", "embedding_model"]
    search_fields = ["title", "source_name", "sha256"]
    list_select_related = ["collection"]
    form = DocumentChangeForm
    readonly_fields = DOCUMENT_READONLY_FIELDS
    fields = ["title", "metadata", *DOCUMENT_READONLY_FIELDS]
    inlines = [ChunkInline]
    actions = ["reembed", "retry_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        granted = collection_list_granted(user=request.user)
        return super().get_queryset(request).filter(collection__in=granted).defer("extracted_text")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the upload page, which processes them

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return collection_can_write(user=request.user, collection=obj.collection)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def _writable(self, request: HttpRequest, queryset: QuerySet[Document]) -> list[Document]:
        writable = collection_list_writable(user=request.user)
        return list(queryset.filter(collection__in=writable))

    @admin.display(description="status", ordering="status")
    def status_badge(self, document: Document) -> str:
        return format_html(
            '<span class="status status-{}">{}</span>', document.status, document.status
        )

    @admin.display(description="original")
    def original_link(self, document: Document) -> str:
        # Through the permission-checked download, not MEDIA_URL (never served).
        return format_html(
            '<a href="{}">{}</a>',
            reverse("document-original", args=[document.pk]),
            document.source_name or "download",
        )

    @admin.display(description="error")
    def short_error(self, document: Document) -> str:
        return document.error[:120]

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="documents_document_upload",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        busy = self.get_queryset(request).filter(status__in=["pending", "processing"]).count()
        extra = {"busy_count": busy, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = DocumentUploadForm(request.POST or None, request.FILES or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            self._upload_files(request, form)
            if not form.errors:
                return HttpResponseRedirect(reverse("admin:documents_document_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Upload documents",
        }
        return TemplateResponse(request, "admin/documents/document/upload.html", context)

    def _upload_files(self, request: HttpRequest, form: DocumentUploadForm) -> None:
        """Upload each file; refusals become form errors naming the file."""
        collection = form.cleaned_data["collection"]
        if collection is None:
            collection = collection_create_named(
                owner=request.user, name=form.cleaned_data["new_collection"]
            )
            messages.success(request, f"Created the collection {collection.name!r}.")
        files = form.cleaned_data["files"]
        queued = 0
        duplicates: list[str] = []
        for file in files:
            try:
                result = document_upload(
                    collection=collection,
                    user=request.user,
                    file=file,
                    title=form.cleaned_data["title"] if len(files) == 1 else "",
                    metadata=form.cleaned_data["metadata"],
                )
            except UploadError as exc:
                form.add_error("files", f"{file.name}: {exc.message}")
                continue
            if result.duplicate:
                duplicates.append(safe_source_name(file.name or ""))
            else:
                queued += 1
        if queued or duplicates:
            already = f"; already uploaded: {', '.join(duplicates)}" if duplicates else ""
            messages.success(request, f"Queued {queued} document(s) for processing{already}.")

    @admin.action(description="Re-embed selected documents")
    def reembed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        queued, refused = _each(document_reembed, self._writable(request, queryset))
        if queued:
            messages.success(request, f"Queued {queued} document(s) for re-embedding.")
        if refused:
            messages.warning(
                request, f"Skipped {refused} pending or processing document(s): not settled yet."
            )

    @admin.action(description="Retry selected failed documents")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        failed = self._writable(request, queryset.filter(status=Document.Status.FAILED))
        queued, refused = _each(document_retry, failed)
        messages.success(request, f"Queued {queued} failed document(s) again.")
        if refused:
            messages.warning(request, f"Skipped {refused} document(s) that are no longer failed.")

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in self._writable(request, queryset):
            document_delete(document=document)

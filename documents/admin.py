from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from documents.forms import DocumentUploadForm
from documents.models import Chunk, Collection, Document
from documents.services import (
    UploadError,
    collection_delete,
    document_delete,
    document_reembed,
    document_retry,
    document_upload,
)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "is_public", "search_config", "owner", "created"]
    list_filter = ["is_public", "search_config"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created", "updated"]

    def delete_model(self, request: HttpRequest, obj: Collection) -> None:
        collection_delete(collection=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Collection]) -> None:
        for collection in queryset:
            collection_delete(collection=collection)


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ["ordinal", "pages", "heading", "token_count", "embedding_model", "preview"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chunk]:
        return super().get_queryset(request).defer("embedding", "bm25", "search_vector")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="pages")
    def pages(self, chunk: Chunk) -> str:
        if chunk.first_page is None:
            return "–"
        if chunk.first_page == chunk.last_page:
            return str(chunk.first_page)
        return f"{chunk.first_page}–{chunk.last_page}"

    @admin.display(description="heading path")
    def heading(self, chunk: Chunk) -> str:
        return " › ".join(chunk.heading_path)

    @admin.display(description="text")
    def preview(self, chunk: Chunk) -> str:
        return chunk.text[:200] + ("…" if len(chunk.text) > 200 else "")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
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
    list_filter = ["status", "collection", "mime_type", "embedding_model"]
    search_fields = ["title", "source_name", "sha256"]
    list_select_related = ["collection"]
    readonly_fields = [
        "collection",
        "original",
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
    fields = ["title", "metadata", *readonly_fields]
    inlines = [ChunkInline]
    actions = ["reembed", "retry_failed"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Document]:
        return super().get_queryset(request).defer("extracted_text")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the upload page, which processes them

    @admin.display(description="status", ordering="status")
    def status_badge(self, document: Document) -> str:
        return format_html(
            '<span class="status status-{}">{}</span>', document.status, document.status
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
        busy = Document.objects.filter(status__in=["pending", "processing"]).count()
        extra = {"busy_count": busy, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = DocumentUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            files = form.cleaned_data["files"]
            queued = duplicates = 0
            for file in files:
                try:
                    result = document_upload(
                        collection=form.cleaned_data["collection"],
                        user=request.user,
                        file=file,
                        title=form.cleaned_data["title"] if len(files) == 1 else "",
                        metadata=form.cleaned_data["metadata"],
                    )
                except UploadError as exc:
                    form.add_error("files", f"{file.name}: {exc.message}")
                    continue
                duplicates += result.duplicate
                queued += not result.duplicate
            if queued or duplicates:
                messages.success(
                    request,
                    f"Queued {queued} document(s) for processing"
                    + (f"; {duplicates} already uploaded" if duplicates else "")
                    + ".",
                )
            if not form.errors:
                return HttpResponseRedirect(reverse("admin:documents_document_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Upload documents",
        }
        return TemplateResponse(request, "admin/documents/document/upload.html", context)

    @admin.action(description="Re-embed selected documents")
    def reembed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_reembed(document=document)
        messages.success(request, f"Queued {queryset.count()} document(s) for re-embedding.")

    @admin.action(description="Retry selected failed documents")
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        failed = list(queryset.filter(status=Document.Status.FAILED))
        for document in failed:
            document_retry(document=document)
        messages.success(request, f"Queued {len(failed)} failed document(s) again.")

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_delete(document=document)

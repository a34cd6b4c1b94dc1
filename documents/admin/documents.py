"""Documents in the admin: the multi-file upload, the live list (admin_status.js polls
`status_view`), actions through the lifecycle services, the read-only chunks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from documents.admin.access import GrantedCollectionFilter, StaffAccess
from documents.citations import pages_label
from documents.forms import DocumentChangeForm, DocumentUploadForm
from documents.lifecycle import DocumentStateError, document_reembed, document_retry
from documents.models import Chunk, Document
from documents.progress import batch_create, batch_label, batch_progress, progress_label
from documents.selectors import (
    collection_can_write,
    collection_list_granted,
    collection_list_writable,
)
from documents.services import (
    UploadError,
    collection_create_named,
    document_delete,
    document_upload,
    safe_source_name,
)
from documents.workers import worker_notice

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


def _each(transition: Callable[..., Document], documents: list[Document]) -> tuple[int, int]:
    """Apply a lifecycle transition to each document: (done, refused by its status)."""
    done = refused = 0
    for document in documents:
        try:
            transition(document=document)
            done += 1
        except DocumentStateError:
            refused += 1
    return done, refused


# The last upload's batch, whose progress bar the document list shows until it is done.
BATCH_SESSION_KEY = "documents_upload_batch"

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
        # admin_status.js updates both spans in place from status_view.
        return format_html(
            '<span class="status status-{}">{}</span><span class="progress-note">{}</span>',
            document.status,
            document.status,
            progress_label(document),
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
            path(
                "status/",
                self.admin_site.admin_view(self.status_view),
                name="documents_document_status",
            ),
            *super().get_urls(),
        ]

    def _live(self, request: HttpRequest) -> dict[str, Any]:
        """What the list shows above the table, and updates in place: how many documents
        wait, the no-worker notice, the last upload's batch bar."""
        visible = self.get_queryset(request)
        notice = worker_notice(documents=visible)
        batch_id = request.session.get(BATCH_SESSION_KEY)
        batch = batch_progress(batch_id) if batch_id else None
        if batch is None or batch.finished:  # shown finished once, then gone
            request.session.pop(BATCH_SESSION_KEY, None)
        busy = visible.filter(
            status__in=[Document.Status.PENDING, Document.Status.PROCESSING]
        ).count()
        return {
            "busy": busy,
            "busy_text": f"{busy} document{'s' if busy != 1 else ''} waiting or processing"
            if busy
            else "",
            "notice": notice.message if notice else None,
            "batch": {**batch.as_dict(), "text": batch_label(batch)} if batch else None,
        }

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {
            "live": self._live(request),
            "status_url": reverse("admin:documents_document_status"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=extra)

    def status_view(self, request: HttpRequest) -> JsonResponse:
        """The rows on the list's page (`?ids=1,2,3`), for admin_status.js to update in
        place; only documents this staff member may see."""
        raw = [part for part in request.GET.get("ids", "").split(",") if part]
        if len(raw) > 1000 or not all(part.isdigit() and len(part) < 19 for part in raw):
            return JsonResponse({"detail": "ids: up to 1000 comma-separated numbers"}, status=400)
        documents = self.get_queryset(request).filter(pk__in=[int(part) for part in raw])
        rows = [
            {
                "id": document.pk,
                "status": document.status,
                "progress": progress_label(document),
                "error": self.short_error(document),
                "chunk_count": document.chunk_count,
                "embedding_model": document.embedding_model or "-",
            }
            for document in documents
        ]
        return JsonResponse({"documents": rows, **self._live(request)})

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
        batch = batch_create()  # the list shows these files' progress as one bar
        for file in files:
            try:
                result = document_upload(
                    collection=collection,
                    user=request.user,
                    file=file,
                    title=form.cleaned_data["title"] if len(files) == 1 else "",
                    metadata=form.cleaned_data["metadata"],
                    batch=batch,
                )
            except UploadError as exc:
                form.add_error("files", f"{file.name}: {exc.message}")
                continue
            if result.duplicate:
                duplicates.append(safe_source_name(file.name or ""))
            else:
                queued += 1
        if queued:
            request.session[BATCH_SESSION_KEY] = str(batch.pk)
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

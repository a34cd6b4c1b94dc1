from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.throttling import BaseThrottle

from documents.lifecycle import DocumentStateError, document_reembed, document_retry
from documents.models import Collection, Document
from documents.reembed_api import spec_from_request
from documents.selectors import (
    collection_can_manage,
    collection_can_write,
    collection_list_readable,
    document_list_readable,
    grant_list,
)
from documents.serializers import (
    CollectionSerializer,
    DocumentContentSerializer,
    DocumentListFilterSerializer,
    DocumentSerializer,
    DocumentUpdateSerializer,
    DocumentUploadResultSerializer,
    DocumentUploadSerializer,
    GrantSerializer,
)
from documents.services import (
    CollectionError,
    UploadError,
    collection_create,
    collection_delete,
    collection_update,
    document_delete,
    document_replace_content,
    document_update,
    document_upload,
    grant_revoke,
    grant_set,
)
from ragsite.api.parsers import JSONParser  # DRF's, with a depth cap
from ragsite.api.schema import ApiErrorSerializer
from ragsite.api.throttles import UserThrottle
from ragsite.json_safety import check_text

ERRORS = {
    code: OpenApiResponse(ApiErrorSerializer, description=description)
    for code, description in {
        400: "Invalid input; `detail` names the field.",
        401: "Not signed in.",
        403: "Not allowed.",
        404: "Not found (or not readable by you).",
    }.items()
}


class GrantThrottle(UserThrottle):
    """Granting to a username answers whether the user exists (to the collection's owner
    only); this bounds how fast an owner can probe for usernames that way. Counted by the
    same atomic counter as every other throttle, so parallel requests cannot overrun it."""

    scope = "grants"
    setting = "API_THROTTLE_GRANTS"


class StateConflict(APIException):
    """The document's status does not allow the operation (retry, re-embed): 409."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, error: DocumentStateError) -> None:
        super().__init__(detail=error.message)


CONFLICT = {409: OpenApiResponse(ApiErrorSerializer, description="Not in a state that allows it.")}


class UploadRejected(APIException):
    def __init__(self, error: UploadError) -> None:
        super().__init__(detail=error.message)
        self.status_code = error.status


@extend_schema_view(
    list=extend_schema(summary="List the collections you may read"),
    create=extend_schema(summary="Create a collection (you own it)"),
    retrieve=extend_schema(summary="Get a collection"),
    update=extend_schema(summary="Replace a collection's settings (owner only)"),
    partial_update=extend_schema(summary="Change some of a collection's settings (owner only)"),
    destroy=extend_schema(summary="Delete a collection with its documents (owner only)"),
)
class CollectionViewSet(viewsets.ModelViewSet):
    """Collections of documents: public ones, your own and those shared with you.

    Anyone signed in may create one and becomes its owner; only the owner changes or
    deletes it and manages who else may read or write it (grants)."""

    serializer_class = CollectionSerializer
    lookup_field = "slug"

    def get_queryset(self) -> QuerySet[Collection]:
        return collection_list_readable(user=self.request.user).select_related("owner")

    def get_object(self) -> Collection:
        try:
            check_text(str(self.kwargs.get(self.lookup_field, "")))
        except ValueError as exc:  # no slug holds one; the database could not compare it
            raise Http404("no such collection") from exc
        return super().get_object()

    def get_throttles(self) -> list[BaseThrottle]:
        throttles = super().get_throttles()
        if self.action == "grant_create":
            throttles.append(GrantThrottle())
        return throttles

    def _require_manage(self, collection: Collection) -> None:
        if not collection_can_manage(user=self.request.user, collection=collection):
            raise PermissionDenied("only the collection's owner may do this")

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        values = dict(serializer.validated_data)
        wanted = values.pop("embedding", None)
        user = self.request.user
        spec = spec_from_request(wanted, user=user, field="embedding") if wanted else None
        try:
            serializer.instance = collection_create(owner=user, spec=spec, **values)
        except CollectionError as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        collection = cast(Collection, serializer.instance)  # an update always has one
        self._require_manage(collection)
        try:
            serializer.instance = collection_update(
                collection=collection, **serializer.validated_data
            )
        except CollectionError as exc:
            raise ValidationError({exc.field: [exc.message]}) from exc

    def perform_destroy(self, instance: Collection) -> None:
        self._require_manage(instance)
        collection_delete(collection=instance)

    @extend_schema(
        summary="List a collection's grants",
        responses={200: GrantSerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="grants", pagination_class=None)
    def grants(self, request: Request, slug: str) -> Response:
        """Who besides the owner may read or write this collection (owner only)."""
        collection = self.get_object()
        self._require_manage(collection)
        return Response(GrantSerializer(grant_list(collection=collection), many=True).data)

    @extend_schema(
        summary="Grant read or write to a user or group",
        request=GrantSerializer,
        responses={201: GrantSerializer, 200: GrantSerializer, **ERRORS},
    )
    @grants.mapping.post
    def grant_create(self, request: Request, slug: str) -> Response:
        """Grant `read` or `write` to a user or a group; an existing grant is changed."""
        collection = self.get_object()
        self._require_manage(collection)
        data = GrantSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        existed = (
            grant_list(collection=collection)
            .filter(user=values.get("user"), group=values.get("group"))
            .exists()
        )
        grant = grant_set(
            collection=collection,
            permission=values.get("permission", "read"),
            user=values.get("user"),
            group=values.get("group"),
        )
        return Response(
            GrantSerializer(grant).data,
            status=status.HTTP_200_OK if existed else status.HTTP_201_CREATED,
        )

    @extend_schema(summary="Revoke a grant", request=None, responses={204: None, **ERRORS})
    @action(detail=True, methods=["delete"], url_path=r"grants/(?P<grant_id>\d+)")
    def grant_delete(self, request: Request, slug: str, grant_id: str) -> Response:
        """Revoke a grant."""
        collection = self.get_object()
        self._require_manage(collection)
        grant = grant_list(collection=collection).filter(pk=int(grant_id)).first()
        if grant is None:
            raise Http404("no such grant on this collection")
        grant_revoke(grant=grant)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(responses={**ERRORS})
@extend_schema_view(
    list=extend_schema(summary="List the documents you may read"),
    create=extend_schema(summary="Upload a document (a file or JSON text)"),
    retrieve=extend_schema(summary="Get a document: status, progress, metadata"),
    partial_update=extend_schema(summary="Change a document's title or metadata"),
    destroy=extend_schema(summary="Delete a document with its chunks and original"),
)
class DocumentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Documents: upload (processed in the background), status, metadata, new versions."""

    serializer_class = DocumentSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def get_writable_object(self) -> Document:
        """The document, if readable (else 404), and only if the caller may write it."""
        document = self.get_object()
        if not collection_can_write(user=self.request.user, collection=document.collection):
            raise PermissionDenied("you may read this collection but not change it")
        return document

    def get_queryset(self) -> QuerySet[Document]:
        queryset = document_list_readable(user=self.request.user).select_related("collection")
        given = {
            k: v for k, v in self.request.query_params.items() if k in ("collection", "status")
        }
        filters = DocumentListFilterSerializer(data={k: v for k, v in given.items() if v})
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        if params.get("collection"):
            queryset = queryset.filter(collection__slug=params["collection"])
        if params.get("status"):
            queryset = queryset.filter(status=params["status"])
        return queryset

    @extend_schema(
        parameters=[
            OpenApiParameter("collection", str, description="Collection slug."),
            OpenApiParameter("status", str, enum=[s.value for s in Document.Status]),
        ]
    )
    def list(self, request: Request) -> Response:
        return super().list(request)

    @extend_schema(
        request={
            "multipart/form-data": DocumentUploadSerializer,
            "application/json": DocumentUploadSerializer,
        },
        responses={
            202: DocumentUploadResultSerializer,
            200: OpenApiResponse(
                DocumentUploadResultSerializer, description="Same content already uploaded."
            ),
            413: OpenApiResponse(description="File over the size limit."),
            **ERRORS,
        },
    )
    def create(self, request: Request) -> Response:
        data = DocumentUploadSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if not collection_can_write(user=request.user, collection=values["collection"]):
            raise PermissionDenied("you may read this collection but not add to it")
        try:
            result = document_upload(
                collection=values["collection"],
                user=request.user,
                file=values.get("file"),
                text=values.get("text"),
                title=values["title"],
                metadata=values["metadata"],
            )
        except UploadError as exc:
            raise UploadRejected(exc) from exc
        body = DocumentUploadResultSerializer(result, context={"request": request}).data
        return Response(
            body, status=status.HTTP_200_OK if result.duplicate else status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=DocumentUpdateSerializer, responses={200: DocumentSerializer, **ERRORS})
    def partial_update(self, request: Request, pk: str) -> Response:
        document = self.get_writable_object()
        data = DocumentUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            document = document_update(document=document, **data.validated_data)
        except UploadError as exc:
            raise UploadRejected(exc) from exc
        return Response(self.get_serializer(document).data)

    def destroy(self, request: Request, pk: str) -> Response:
        document_delete(document=self.get_writable_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Replace a document's content (new version, same id)",
        request={
            "multipart/form-data": DocumentContentSerializer,
            "application/json": DocumentContentSerializer,
        },
        responses={
            202: DocumentSerializer,
            413: OpenApiResponse(description="Too large."),
            **ERRORS,
        },
    )
    @action(detail=True, methods=["put"], url_path="content")
    def content(self, request: Request, pk: str) -> Response:
        """Replace the content with a new version: same id, processed again."""
        document = self.get_writable_object()
        data = DocumentContentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            document = document_replace_content(document=document, **data.validated_data)
        except UploadError as exc:
            raise UploadRejected(exc) from exc
        return Response(self.get_serializer(document).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Chunk and embed a document again",
        request=None,
        responses={202: DocumentSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def reembed(self, request: Request, pk: str) -> Response:
        """Chunk and embed a ready or failed document again (for example after a model
        change); 409 while it is pending or processing."""
        try:
            document = document_reembed(document=self.get_writable_object())
        except DocumentStateError as exc:
            raise StateConflict(exc) from exc
        return Response(self.get_serializer(document).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Retry a failed document",
        request=None,
        responses={202: DocumentSerializer, **ERRORS, **CONFLICT},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        """Queue a failed document again; 409 for a document that has not failed."""
        try:
            document = document_retry(document=self.get_writable_object())
        except DocumentStateError as exc:
            raise StateConflict(exc) from exc
        return Response(self.get_serializer(document).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Download the stored original",
        parameters=[
            OpenApiParameter(
                "inline",
                bool,
                description="1: show a PDF or text file in the browser (its own type, "
                "Content-Disposition inline); other types stay attachments.",
            )
        ],
        responses={
            (200, "application/octet-stream"): bytes,
            (200, "application/pdf"): bytes,
            (200, "text/plain"): bytes,
            **ERRORS,
        },
    )
    @action(detail=True, methods=["get"])
    def original(self, request: Request, pk: str) -> FileResponse:
        """The stored original, as an attachment; with `?inline=1` a PDF or text file is
        served with its own type to be shown in place."""
        document = self.get_object()
        return original_file_response(document, inline=wants_inline(request))


# What a browser may show in place when the caller asks for it (`?inline=1`), by the type
# detected from the content at ingestion: PDFs, and text shown as text (Markdown too, never
# rendered). Everything else, HTML above all, is only ever a download.
INLINE_CONTENT_TYPES = {
    "application/pdf": "application/pdf",
    "text/plain": "text/plain",
    "text/markdown": "text/plain",
}


def wants_inline(request: HttpRequest | Request) -> bool:
    return request.GET.get("inline") in ("1", "true", "yes")


def original_file_response(document: Document, *, inline: bool = False) -> FileResponse:
    """The stored original: shown in place for the safe types when ``inline`` is asked
    for, otherwise a download. Either way the sandbox CSP and ``nosniff`` keep a browser
    from running anything in our origin."""
    try:
        handle = document.original.open("rb")
    except FileNotFoundError as exc:
        raise Http404("the stored original is missing") from exc
    shown_as = INLINE_CONTENT_TYPES.get(document.mime_type) if inline else None
    response = FileResponse(
        handle,
        as_attachment=shown_as is None,
        filename=document.source_name or "document",
        content_type=shown_as or "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response

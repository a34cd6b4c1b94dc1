"""`/api/v1/collections/{slug}/reembed/`: a collection's model change (documents/reembed.py)
started, followed and cancelled over the API; and the model a new collection is created
with (`embedding` in the collection's body)."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents.embedding import ModelSpec
from documents.models import Collection
from documents.reembed import (
    ReembedError,
    ReembedProgress,
    collection_reembed_cancel,
    collection_reembed_start,
    reembed_progress,
    target_spec,
)
from documents.selectors import collection_can_write, collection_list_readable
from documents.serializers import EmbeddingSpecSerializer, ReembedProgressSerializer
from ragsite.api.schema import ApiErrorSerializer
from ragsite.json_safety import check_text

ERRORS = {
    code: OpenApiResponse(ApiErrorSerializer, description=description)
    for code, description in {
        400: "A model that cannot be used (the reason is given), or the one in use.",
        403: "You may not change this collection.",
        404: "No such collection (or not readable by you).",
    }.items()
}


def spec_from_request(values: dict[str, Any], *, user: Any, field: str) -> ModelSpec:
    """The spec an API caller asks for. A location (a folder on this server, or a URL the
    server would POST every text to) is for staff only: anyone else uses the settings'
    folder or server under another model name or backend."""
    if values.get("location") is not None and not getattr(user, "is_staff", False):
        raise PermissionDenied("only staff may set a model's location")
    try:
        return target_spec(**values)
    except ReembedError as exc:
        raise ValidationError({field: [str(exc)]}) from exc


def progress_body(progress: ReembedProgress, collection: Collection) -> Any:
    body = {**progress.__dict__, "done": progress.done, "embedding": collection}
    return ReembedProgressSerializer(body).data


class CollectionReembedView(APIView):
    """Move a collection to another embedding model without downtime: its documents are
    chunked and embedded again beside the old chunks (search keeps serving those, with
    full results), then the collection switches in one transaction."""

    permission_classes = [permissions.AllowAny]  # readable collections only, in the query

    def _collection(self, slug: str, *, write: bool) -> Collection:
        try:
            check_text(slug)
        except ValueError as exc:
            raise Http404("no such collection") from exc
        collection = get_object_or_404(collection_list_readable(user=self.request.user), slug=slug)
        if write and not collection_can_write(user=self.request.user, collection=collection):
            raise PermissionDenied("you may read this collection but not change it")
        return collection

    @extend_schema(
        summary="A collection's model change: progress",
        responses={200: ReembedProgressSerializer, **ERRORS},
    )
    def get(self, request: Request, slug: str) -> Response:
        collection = self._collection(slug, write=False)
        return Response(progress_body(reembed_progress(collection), collection))

    @extend_schema(
        summary="Move a collection to another embedding model (in the background)",
        request=EmbeddingSpecSerializer,
        responses={202: ReembedProgressSerializer, **ERRORS},
    )
    def post(self, request: Request, slug: str) -> Response:
        """Start, or resume with the same model, a model change; the workers do it. Asking
        for another model while one is in progress replaces the target."""
        collection = self._collection(slug, write=True)
        data = EmbeddingSpecSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        spec = spec_from_request(dict(data.validated_data), user=request.user, field="model")
        try:
            progress = collection_reembed_start(collection=collection, spec=spec)
        except ReembedError as exc:
            raise ValidationError({"model": [str(exc)]}) from exc
        return Response(progress_body(progress, collection), status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel a collection's model change",
        request=None,
        responses={200: ReembedProgressSerializer, **ERRORS},
    )
    def delete(self, request: Request, slug: str) -> Response:
        """The collection keeps its model; what was staged is dropped."""
        collection = self._collection(slug, write=True)
        collection_reembed_cancel(collection=collection)
        return Response(progress_body(reembed_progress(collection), collection))

"""GET /api/v1/formats/: the file types uploads accept, and the limits they are held to.

Read-only and the same for everyone: the facts live where they are enforced (the type
table in documents/extraction/detect.py, the limits in settings and archive.py).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents.extraction import SUPPORTED_MIME_TYPES
from documents.extraction.archive import MAX_UNCOMPRESSED_BYTES
from documents.extraction.detect import FORMAT_NAMES


def formats_description() -> dict[str, Any]:
    formats = [
        {
            "mime_type": mime_type,
            "name": FORMAT_NAMES.get(mime_type, (mime_type, ()))[0],
            "extensions": list(FORMAT_NAMES.get(mime_type, ("", ()))[1]),
        }
        for mime_type in SUPPORTED_MIME_TYPES
    ]
    limits = {
        "max_upload_bytes": settings.MAX_UPLOAD_BYTES,
        "max_uncompressed_bytes": MAX_UNCOMPRESSED_BYTES,
        "max_table_rows": settings.EXTRACTION_MAX_ROWS,
        "max_sheets": settings.EXTRACTION_MAX_SHEETS,
        "max_slides": settings.EXTRACTION_MAX_SLIDES,
        "max_attachments": settings.EXTRACTION_MAX_ATTACHMENTS,
        "ocr_max_pages": settings.OCR_MAX_PAGES,
        "ocr_page_timeout_seconds": settings.OCR_PAGE_TIMEOUT,
    }
    return {"formats": formats, "limits": limits}


_FORMAT_FIELDS: dict[str, serializers.Field] = {
    "mime_type": serializers.CharField(),
    "name": serializers.CharField(),
    "extensions": serializers.ListField(child=serializers.CharField()),
}


class FormatsView(APIView):
    """The file types uploads accept (detected by content, not by name) and the limits."""

    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Accepted file types and upload limits",
        responses={
            200: inline_serializer(
                "Formats",
                fields={
                    "formats": inline_serializer("Format", fields=_FORMAT_FIELDS, many=True),
                    "limits": serializers.DictField(child=serializers.IntegerField()),
                },
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response(formats_description())

"""E-mail attachments as documents of their own (issue 18): the worker's pipeline hands
over what documents/extraction/eml.py found; each attachment goes through the ordinary
upload (size limit, type detection, de-duplication, queueing after commit) and records
the message as its `parent`, so deleting the message deletes it (documents/models.py).
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile

from documents.extraction import Attachment, ExtractionError, detect_mime_type
from documents.extraction.detect import EML
from documents.models import Document
from documents.services import UploadError, document_upload


def document_attachments_ingest(
    *, parent: Document, attachments: list[Attachment]
) -> list[Document]:
    """Upload an e-mail's attachments as documents of their own, into the parent's
    collection, each recording the message as its parent. Nested messages and files of
    an unsupported type are skipped (named in the parent's metadata); each attachment is
    held to the upload limit. A file the collection already holds stays as it is."""
    created: list[Document] = []
    skipped: list[str] = []
    for attachment in attachments:
        try:
            _check_attachment(attachment)
            result = document_upload(
                collection=parent.collection,
                user=None,
                file=ContentFile(attachment.data, name=attachment.filename),
                metadata={"attachment_of": parent.pk},
            )
        except UploadError as exc:
            skipped.append(f"{attachment.filename}: {exc}")
            continue
        if not result.duplicate:
            Document.objects.filter(pk=result.document.pk).update(parent=parent)
            created.append(result.document)
    if skipped:
        parent.metadata = {**parent.metadata, "skipped_attachments": skipped}
    return created


def _check_attachment(attachment: Attachment) -> None:
    if len(attachment.data) > settings.MAX_UPLOAD_BYTES:
        raise UploadError(f"larger than the upload limit of {settings.MAX_UPLOAD_BYTES} bytes")
    try:
        mime_type = detect_mime_type(attachment.data, attachment.filename)
    except ExtractionError as exc:
        raise UploadError(str(exc)) from exc
    if mime_type == EML:
        raise UploadError("nested messages are not expanded")

"""Text extraction for ingestion: PDF, DOCX, PPTX, XLSX/CSV, ODT/ODS/ODP, EPUB, RTF, e-mail,
HTML, Markdown and plain text.

    from documents.extraction import extract, ExtractionError

    try:
        result = extract(data, filename=upload.name)
    except ExtractionError as exc:
        document.error = str(exc)  # written for the user

The result's ``text`` is what chunks and citations index into; its ``blocks`` carry the
structure (headings, heading paths, PDF page numbers).
"""

from .detect import SUPPORTED_MIME_TYPES, detect_mime_type
from .extract import extract
from .types import Attachment, Block, ExtractedText, ExtractionError

__all__ = [
    "SUPPORTED_MIME_TYPES",
    "Attachment",
    "Block",
    "ExtractedText",
    "ExtractionError",
    "detect_mime_type",
    "extract",
]

"""``extract``: bytes of an uploaded file to an :class:`ExtractedText`, or ExtractionError."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable

from . import detect
from .docx import parse_docx
from .eml import parse_eml
from .epub import parse_epub
from .html import parse_html
from .image import parse_image
from .ocr import OcrOptions, OcrOutOfTime
from .odf import parse_odf
from .pdf import NO_TEXT, parse_pdf
from .pptx import parse_pptx
from .rtf import parse_rtf
from .spreadsheet import parse_csv, parse_xlsx
from .tables import RowSegment
from .text import Parsed, one_line, parse_markdown, parse_plain, tidy
from .titles import first_line_title, markdown_plain
from .types import Block, ExtractedText, ExtractionError

logger = logging.getLogger(__name__)

# The title ends up in Document.title, a CharField(max_length=500).
MAX_TITLE_LENGTH = 500

_PARSERS: dict[str, tuple[str, Callable[[bytes], Parsed]]] = {
    detect.PLAIN: ("text file", parse_plain),
    detect.MARKDOWN: ("Markdown file", parse_markdown),
    detect.HTML: ("HTML file", parse_html),
    detect.PDF: ("PDF", parse_pdf),
    detect.DOCX: ("DOCX", parse_docx),
    detect.PNG: ("PNG image", parse_image),
    detect.JPEG: ("JPEG image", parse_image),
    detect.TIFF: ("TIFF image", parse_image),
    detect.XLSX: ("XLSX", parse_xlsx),
    detect.CSV: ("CSV file", parse_csv),
    detect.PPTX: ("PPTX", parse_pptx),
    detect.EML: ("e-mail message", parse_eml),
    detect.ODT: ("OpenDocument text", parse_odf),
    detect.ODS: ("OpenDocument spreadsheet", parse_odf),
    detect.ODP: ("OpenDocument presentation", parse_odf),
    detect.EPUB: ("EPUB", parse_epub),
    detect.RTF: ("RTF document", parse_rtf),
}

# Parsers that read scanned pages when given OCR options (only the worker passes them).
_READS_SCANS: dict[str, Callable[..., Parsed]] = {
    detect.PDF: parse_pdf,
    detect.PNG: parse_image,
    detect.JPEG: parse_image,
    detect.TIFF: parse_image,
}


def _parser(mime_type: str, ocr: OcrOptions | None) -> tuple[str, Callable[[bytes], Parsed]]:
    label, parse = _PARSERS[mime_type]
    reads_scans = _READS_SCANS.get(mime_type)
    if reads_scans is None:
        return label, parse
    return label, functools.partial(reads_scans, ocr=ocr)


def assemble(parsed: Parsed, mime_type: str) -> ExtractedText:
    """Normalise the segments and lay them out, separated by blank lines, so that every
    block indexes its own text exactly: ``text[block.start:block.end]``."""
    texts: list[str] = []
    blocks: list[Block] = []
    position = 0
    for segment in parsed.segments:
        row = isinstance(segment, RowSegment)
        text = one_line(segment.text) if segment.is_heading or row else tidy(segment.text)
        if not text:
            continue
        if texts:
            position += 2  # the "\n\n" separator
        path = tuple(part for part in map(one_line, segment.heading_path) if part)
        end = position + len(text)
        blocks.append(Block(position, end, segment.page, path, segment.is_heading, row))
        texts.append(text)
        position += len(text)
    title = one_line(parsed.title or "")[:MAX_TITLE_LENGTH].strip() or None
    return ExtractedText(
        text="\n\n".join(texts),
        mime_type=mime_type,
        blocks=blocks,
        title=title,
        page_count=parsed.page_count,
        metadata=dict(parsed.metadata),
        attachments=list(parsed.attachments),
    )


def extract(data: bytes, *, filename: str, ocr: OcrOptions | None = None) -> ExtractedText:
    """Extract the text of an uploaded file, detecting its type from the content.

    Raises ExtractionError, whose message is meant for the user, for anything that is not
    a readable document of a supported type. Parser bugs and hostile files surface as
    ExtractionError too, never as another exception (KeyboardInterrupt and SystemExit
    still propagate: they are not Exceptions).

    ``ocr``: how to OCR scanned PDF pages and images (documents/extraction/ocr.py);
    None (OCR=off, or not in the worker) leaves them unread.
    """
    if not data or data.isspace():  # isspace: no copy of a large upload
        raise ExtractionError("empty file")
    mime_type = detect.detect_mime_type(data, filename)
    label, parse = _parser(mime_type, ocr)
    try:
        parsed = parse(data)
    except (ExtractionError, OcrOutOfTime):  # the latter: retried in a task of its own
        raise
    except MemoryError:
        raise ExtractionError(f"{label} too large to process") from None
    except RecursionError:
        raise ExtractionError(f"could not read {label}: structure nested too deeply") from None
    except Exception as exc:
        # Unexpected: a parser bug or a file crafted to trip one. Keep the details for the
        # logs; the user gets a message, not a traceback.
        logger.warning("extraction of %r (%s) failed", filename, mime_type, exc_info=True)
        raise ExtractionError(f"could not read {label}: {type(exc).__name__}") from exc
    if mime_type == detect.MARKDOWN and parsed.title:
        parsed.title = markdown_plain(parsed.title)  # badges and link syntax are not a title
    result = assemble(parsed, mime_type)
    if result.title is None and mime_type == detect.PLAIN:
        result = dataclasses.replace(result, title=first_line_title(result.text))
    if not result.blocks:
        raise ExtractionError(NO_TEXT if mime_type == detect.PDF else "no extractable text")
    return result

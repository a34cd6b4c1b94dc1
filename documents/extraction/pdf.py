"""PDF text layer to blocks, page by page, with pypdf.

pypdf raises a wide and changing set of exceptions on hostile or damaged files (its own,
plus ValueError, KeyError, struct.error, RecursionError from deeply nested objects...),
so everything it does is wrapped and turned into an ExtractionError with a short reason.
pypdf itself caps decompressed stream sizes (pypdf.filters / Configuration), which bounds
the memory a "PDF bomb" can take.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from .ocr import (
    NO_TESSERACT,
    OCR_OFF,
    OcrOptions,
    check_page_count,
    ocr_image,
    report,
    unavailable,
)
from .pdf_render import PageRenderer
from .pdf_tables import table_pages
from .running_heads import running_heads, segments_without_running_heads, without_running_heads
from .text import Parsed, Segment, clean, one_line, paragraphs
from .titles import largest_font_line
from .types import ExtractionError

logger = logging.getLogger(__name__)

ENCRYPTED = "encrypted PDF: cannot read a password-protected file"
# pypdf needs the optional "cryptography" package for AES; without it even PDFs with an
# empty user password (copy/print restrictions only) cannot be opened.
ENCRYPTED_AES = "encrypted PDF: AES encryption is not supported on this server"
NO_TEXT = "no extractable text (the PDF has no text layer and no scanned pages)"
NO_TEXT_AFTER_OCR = "no extractable text: OCR found no text on the scanned pages"
# A page whose text layer has fewer letters and digits than this, and an image, is a scan.
MIN_TEXT_LAYER_CHARS = 20

_PLACEHOLDER_TITLES = frozenset({"untitled", "(untitled)", "unspecified", "(unspecified)", "title"})


def _short(exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."


def _error(exc: Exception) -> ExtractionError:
    """The user-facing error for an exception raised by pypdf."""
    if isinstance(exc, DependencyError):  # pypdf needs a crypto library for AES
        return ExtractionError(ENCRYPTED_AES)
    if isinstance(exc, FileNotDecryptedError):
        return ExtractionError(ENCRYPTED)
    return ExtractionError(f"corrupt PDF: {_short(exc)}")


def _open(data: bytes) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        # Many PDFs are "encrypted" only to restrict printing or copying, with an empty
        # user password; those open fine.
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ExtractionError(ENCRYPTED)
    except ExtractionError:
        raise
    except NotImplementedError:  # an encryption scheme pypdf does not know
        raise ExtractionError(ENCRYPTED) from None
    except Exception as exc:  # RecursionError and MemoryError included
        raise _error(exc) from exc
    return reader


def _title(reader: PdfReader) -> str | None:
    # Broken metadata is no reason to reject a readable document.
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:
        return None
    if not isinstance(title, str):
        return None
    title = one_line(title)
    # Producers fill the field with placeholders, or with the source file's name.
    title = title.removeprefix("Microsoft Word - ")
    if title.lower() in _PLACEHOLDER_TITLES:
        return None
    return title or None


def parse_pdf(data: bytes, ocr: OcrOptions | None = None) -> Parsed:
    """The text layer page by page; pages without one (scans) are OCR'd when ``ocr`` is
    given (the worker passes it; see ocr.py). Page numbers stay those of the PDF."""
    reader = _open(data)
    try:
        pages = reader.pages
        page_count = len(pages)
    except Exception as exc:
        raise _error(exc) from exc
    if page_count == 0:
        raise ExtractionError("corrupt PDF: no pages")

    texts, failure = _text_layer(pages, page_count)
    scanned = [number for number, text in texts.items() if _is_scanned(text, pages[number - 1])]
    if scanned:
        has_text = len(scanned) < len(texts) and any(
            text.strip() for number, text in texts.items() if number not in scanned
        )
        texts.update(read_scanned_pages(data, scanned, ocr, has_text=has_text))

    parsed = Parsed(title=_title(reader), page_count=page_count)
    heads = running_heads(texts)  # headers, footers, page numbers: dropped below
    # Pages with ruled tables: rows as table rows, the rest of the page around them.
    tabled = table_pages(data, (n for n in texts if n not in scanned))
    for number in sorted(texts):
        if number in tabled:
            parsed.segments.extend(segments_without_running_heads(tabled[number], heads))
            continue
        for paragraph in paragraphs(without_running_heads(clean(texts[number]), heads)):
            parsed.segments.append(Segment(paragraph, page=number))
    if not any(segment.text.strip() for segment in parsed.segments):
        if failure is not None:
            raise _error(failure)
        raise ExtractionError(NO_TEXT_AFTER_OCR if scanned else NO_TEXT)
    if parsed.title is None:
        parsed.title = _first_page_heading(pages[0])
    return parsed


def _text_layer(pages: Any, page_count: int) -> tuple[dict[int, str], Exception | None]:
    """{page number: text} of the pages pypdf can read, and the last page error."""
    texts: dict[int, str] = {}
    failure: Exception | None = None
    for number in range(1, page_count + 1):
        try:
            texts[number] = pages[number - 1].extract_text() or ""
        except (DependencyError, FileNotDecryptedError) as exc:
            raise _error(exc) from exc  # the same for every page: stop here
        except Exception as exc:
            # One broken page (a bad font, a damaged content stream) should not cost the
            # whole document; it is logged and skipped.
            logger.warning("PDF page %d unreadable: %s", number, exc)
            failure = exc
    return texts, failure


def _is_scanned(text: str, page: PageObject) -> bool:
    """A page with (almost) no text layer that shows an image: a scan. A scanner's stamp
    or a page number is not a text layer; a blank page without images needs no OCR."""
    if sum(character.isalnum() for character in text) >= MIN_TEXT_LAYER_CHARS:
        return False
    try:
        return _has_image(page.get("/Resources"), depth=0)
    except Exception:  # damaged resources: try OCR rather than lose the page
        return True


def _has_image(resources: Any, *, depth: int) -> bool:
    # Scanners and OCR tools sometimes wrap the page image in a form XObject.
    if depth > 3 or resources is None:
        return False
    xobjects = resources.get_object().get("/XObject")
    if xobjects is None:
        return False
    for reference in xobjects.get_object().values():
        xobject = reference.get_object()
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            return True
        if subtype == "/Form" and _has_image(xobject.get("/Resources"), depth=depth + 1):
            return True
    return False


def read_scanned_pages(
    data: bytes, numbers: list[int], ocr: OcrOptions | None, *, has_text: bool
) -> dict[int, str]:
    """{page number: OCR text} of the scanned pages. When OCR cannot run, a PDF with text
    on other pages keeps those (as before OCR existed); one without fails with the reason."""
    reason = unavailable(ocr, off=OCR_OFF, no_binary=NO_TESSERACT)
    if reason is not None or ocr is None:
        if not has_text:
            raise ExtractionError(reason or OCR_OFF)
        logger.warning("%d scanned PDF pages left unread: %s", len(numbers), reason)
        return {}
    check_page_count(len(numbers), ocr, what="scanned PDF")
    # pypdf reads text; rendering needs a rasteriser: PDFium (pypdfium2, Apache/BSD), in a
    # child process with a time and memory limit per page (pdf_render.py).
    texts: dict[int, str] = {}
    report(ocr, 0, len(numbers))
    with PageRenderer(data, ocr) as renderer:
        for done, number in enumerate(numbers, start=1):
            texts[number] = ocr_image(renderer.render(number), ocr, page=number)
            report(ocr, done, len(numbers))
    return texts


def _first_page_heading(page: PageObject) -> str | None:
    # A title is a nicety: a page whose fonts pypdf cannot size keeps the file name.
    try:
        return largest_font_line(page)
    except Exception:
        return None

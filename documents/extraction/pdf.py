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

from pypdf import PageObject, PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError

from .text import Parsed, Segment, clean, one_line, paragraphs
from .titles import largest_font_line
from .types import ExtractionError

logger = logging.getLogger(__name__)

ENCRYPTED = "encrypted PDF: cannot read a password-protected file"
# pypdf needs the optional "cryptography" package for AES; without it even PDFs with an
# empty user password (copy/print restrictions only) cannot be opened.
ENCRYPTED_AES = "encrypted PDF: AES encryption is not supported on this server"
NO_TEXT = "no extractable text (scanned PDF? OCR is not supported)"

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


def parse_pdf(data: bytes) -> Parsed:
    reader = _open(data)
    try:
        pages = reader.pages
        page_count = len(pages)
    except Exception as exc:
        raise _error(exc) from exc
    if page_count == 0:
        raise ExtractionError("corrupt PDF: no pages")

    parsed = Parsed(title=_title(reader), page_count=page_count)
    failure: Exception | None = None
    for number in range(1, page_count + 1):
        try:
            text = pages[number - 1].extract_text()
        except (DependencyError, FileNotDecryptedError) as exc:
            raise _error(exc) from exc  # the same for every page: stop here
        except Exception as exc:
            # One broken page (a bad font, a damaged content stream) should not cost the
            # whole document; it is logged and skipped.
            logger.warning("PDF page %d unreadable: %s", number, exc)
            failure = exc
            continue
        for paragraph in paragraphs(clean(text or "")):
            parsed.segments.append(Segment(paragraph, page=number))

    if not any(segment.text.strip() for segment in parsed.segments):
        if failure is not None:
            raise _error(failure)
        raise ExtractionError(NO_TEXT)
    if parsed.title is None:
        parsed.title = _first_page_heading(pages[0])
    return parsed


def _first_page_heading(page: PageObject) -> str | None:
    # A title is a nicety: a page whose fonts pypdf cannot size keeps the file name.
    try:
        return largest_font_line(page)
    except Exception:
        return None

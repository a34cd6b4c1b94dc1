"""File type detection: content first, the file name only to choose between text flavours.

Users upload PDFs named ``.txt`` and HTML named ``.md``; trusting the extension would feed
a parser the wrong bytes. The extension only decides what content cannot: whether a text
file is Markdown, and whether an HTML fragment without <html> is HTML.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath

from .text import binary_reason, bom_codec, looks_like_markdown
from .types import ExtractionError

PLAIN = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

SUPPORTED_MIME_TYPES: tuple[str, ...] = (PLAIN, MARKDOWN, HTML, PDF, DOCX)

_SNIFF_BYTES = 65536

# Known binary formats, so the error can say what the file looks like.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"II*\x00", "TIFF image"),
    (b"MM\x00*", "TIFF image"),
    (b"BM", "BMP image"),  # only trusted together with binary content, see below
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"(\xb5/\xfd", "zstd archive"),
    (b"7z\xbc\xaf'\x1c", "7-Zip archive"),
    (b"Rar!\x1a\x07", "RAR archive"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),  # only trusted together with binary content
    (b"\xca\xfe\xba\xbe", "Java class or Mach-O binary"),
    (b"\xcf\xfa\xed\xfe", "Mach-O executable"),
    (b"\x00asm", "WebAssembly module"),
    (b"SQLite format 3\x00", "SQLite database"),
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "legacy Microsoft Office file (.doc/.xls/.ppt); save it as .docx or PDF",
    ),
    (b"{\\rtf", "RTF document; save it as .docx or PDF"),
    (b"OggS", "Ogg audio/video"),
    (b"fLaC", "FLAC audio"),
    (b"ID3", "MP3 audio"),
    (b"%!PS", "PostScript document"),
    (b"wOFF", "web font"),
    (b"wOF2", "web font"),
)
# Short signatures that are also plausible starts of a text file ("BMW...", "MZ ...").
_WEAK_MAGIC = {b"BM", b"MZ", b"ID3", b"BZh"}

# Packages that are ZIP files too, to name them in the error.
_ZIP_KINDS: tuple[tuple[str, str], ...] = (
    ("xl/workbook.xml", "Excel spreadsheet (.xlsx)"),
    ("ppt/presentation.xml", "PowerPoint presentation (.pptx)"),
    ("META-INF/container.xml", "EPUB e-book"),
    ("content.xml", "OpenDocument file (.odt/.ods/.odp); save it as .docx or PDF"),
)

_HTML_MARKERS = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)


def _extension(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def _zip_type(data: bytes, extension: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())  # the central directory only: no decompression
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        if extension == ".docx":
            return DOCX  # let the DOCX reader report it as a corrupt DOCX
        raise ExtractionError("unsupported file type: damaged ZIP archive") from None
    if "word/document.xml" in names:
        return DOCX
    for member, kind in _ZIP_KINDS:
        if member in names:
            raise ExtractionError(f"unsupported file type: {kind}")
    raise ExtractionError("unsupported file type: ZIP archive (not a Word .docx document)")


def _head_text(head: bytes) -> str:
    """The start of a text file, decoded well enough for sniffing (not for extraction)."""
    bom = bom_codec(head)
    if bom is None:
        return head.decode("utf-8", errors="ignore")
    codec, size = bom
    return head[size:].decode(codec, errors="ignore")


def _looks_like_html(head: str) -> bool:
    """HTML sniffing in the spirit of browsers: the document starts with markup and names
    <!doctype html>, <html>, <head> or <body> within its first kilobyte. A Markdown file
    that merely mentions <html> further down stays Markdown."""
    start = head[:1024].lstrip()
    return start.startswith("<") and _HTML_MARKERS.search(start) is not None


def detect_mime_type(data: bytes, filename: str) -> str:
    """The MIME type of ``data``, one of SUPPORTED_MIME_TYPES, judged by content first.

    Raises ExtractionError("unsupported file type: ...") for anything else, naming what
    the file looks like.
    """
    if not data:
        raise ExtractionError("empty file")
    extension = _extension(filename)
    head = data[:_SNIFF_BYTES]

    # The PDF header may follow a little junk; only look past the start for .pdf names
    # so a text file that merely begins by quoting "%PDF-" is not taken for a PDF.
    if head.lstrip().startswith(b"%PDF-") or (extension == ".pdf" and b"%PDF-" in head[:1024]):
        return PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(data, extension)

    _reject_binary(head, extension)
    return _text_type(_head_text(head), extension)


def _reject_binary(head: bytes, extension: str) -> None:
    """Raise ExtractionError naming what a binary (non-PDF, non-ZIP) file looks like."""
    if extension == ".docx" and head.startswith(b"\xd0\xcf\x11\xe0"):
        # Word saves password-protected .docx files as OLE2 containers, not ZIPs.
        raise ExtractionError("encrypted DOCX: cannot read a password-protected file")

    reason = binary_reason(head)
    for magic, kind in _MAGIC:
        if head.startswith(magic) and (magic not in _WEAK_MAGIC or reason is not None):
            raise ExtractionError(f"unsupported file type: {kind}")
    if head[4:8] == b"ftyp":
        raise ExtractionError("unsupported file type: MP4/QuickTime video or audio")
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        raise ExtractionError("unsupported file type: RIFF media (WebP/WAV/AVI)")

    if reason is not None:
        raise ExtractionError(f"unsupported file type: {reason}")


def _text_type(text: str, extension: str) -> str:
    if _looks_like_html(text):
        return HTML

    if extension in (".html", ".htm", ".xhtml"):
        return HTML
    if extension in (".md", ".markdown", ".mdown", ".mkd"):
        return MARKDOWN
    if extension != ".txt" and looks_like_markdown(text):
        return MARKDOWN
    return PLAIN

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

from .image import check_image
from .text import binary_reason, bom_codec, looks_like_markdown
from .types import ExtractionError

PLAIN = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
# Scans and photos of text, read by OCR in the worker (image.py, ocr.py).
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
CSV = "text/csv"
EML = "message/rfc822"
EPUB = "application/epub+zip"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
ODP = "application/vnd.oasis.opendocument.presentation"
RTF = "application/rtf"

SUPPORTED_MIME_TYPES: tuple[str, ...] = (
    PLAIN,
    MARKDOWN,
    HTML,
    PDF,
    DOCX,
    XLSX,
    PPTX,
    CSV,
    EML,
    EPUB,
    ODT,
    ODS,
    ODP,
    RTF,
    PNG,
    JPEG,
    TIFF,
)

# What GET /api/v1/formats/ and the upload form tell users: a name and the usual file
# name extensions of each supported type (detection itself goes by content).
FORMAT_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    PLAIN: ("Plain text", (".txt",)),
    MARKDOWN: ("Markdown", (".md", ".markdown")),
    HTML: ("HTML", (".html", ".htm", ".xhtml")),
    PDF: ("PDF (scanned pages are OCR'd)", (".pdf",)),
    DOCX: ("Word document", (".docx",)),
    XLSX: ("Excel spreadsheet", (".xlsx", ".xlsm")),
    PPTX: ("PowerPoint presentation", (".pptx",)),
    CSV: ("CSV or TSV table", (".csv", ".tsv")),
    EML: ("E-mail message (attachments become documents)", (".eml",)),
    EPUB: ("EPUB e-book", (".epub",)),
    ODT: ("OpenDocument text", (".odt",)),
    ODS: ("OpenDocument spreadsheet", (".ods",)),
    ODP: ("OpenDocument presentation", (".odp",)),
    RTF: ("Rich Text Format", (".rtf",)),
    PNG: ("PNG image (OCR)", (".png",)),
    JPEG: ("JPEG image (OCR)", (".jpg", ".jpeg")),
    TIFF: ("TIFF image, multi-page too (OCR)", (".tif", ".tiff")),
}

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
    (b"OggS", "Ogg audio/video"),
    (b"fLaC", "FLAC audio"),
    (b"ID3", "MP3 audio"),
    (b"%!PS", "PostScript document"),
    (b"wOFF", "web font"),
    (b"wOF2", "web font"),
)
# Short signatures that are also plausible starts of a text file ("BMW...", "MZ ...").
_WEAK_MAGIC = {b"BM", b"MZ", b"ID3", b"BZh"}

# ZIP packages by the part that names them (OOXML) ...
_ZIP_PARTS: tuple[tuple[str, str], ...] = (
    ("word/document.xml", DOCX),
    ("xl/workbook.xml", XLSX),
    ("ppt/presentation.xml", PPTX),
)
# ... or by their "mimetype" member (OpenDocument, EPUB), whose content is the type.
_ZIP_MIMETYPES = {ODT: ODT, ODS: ODS, ODP: ODP, EPUB: EPUB}
_ZIP_EXTENSIONS = {
    ".docx": DOCX,
    ".xlsx": XLSX,
    ".xlsm": XLSX,
    ".pptx": PPTX,
    ".odt": ODT,
    ".ods": ODS,
    ".odp": ODP,
    ".epub": EPUB,
}

_HEADER_LINE = re.compile(r"([!-9;-~]+):")  # RFC 5322 field name: printable, no colon
_EMAIL_HEADERS = frozenset(
    {"from", "to", "subject", "date", "message-id", "mime-version", "received", "return-path"}
)
_HTML_MARKERS = re.compile(r"<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]", re.IGNORECASE)


def _extension(filename: str) -> str:
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def _zip_type(data: bytes, extension: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())  # the central directory only: no decompression
            mimetype = _mimetype_member(archive) if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        if extension in _ZIP_EXTENSIONS:
            return _ZIP_EXTENSIONS[extension]  # let its reader report it as corrupt
        raise ExtractionError("unsupported file type: damaged ZIP archive") from None
    for part, mime_type in _ZIP_PARTS:
        if part in names:
            return mime_type
    if mimetype in _ZIP_MIMETYPES:
        return _ZIP_MIMETYPES[mimetype]
    if "META-INF/container.xml" in names:
        return EPUB
    if "content.xml" in names and _ZIP_EXTENSIONS.get(extension) in (ODT, ODS, ODP):
        return _ZIP_EXTENSIONS[extension]
    if "content.xml" in names:
        raise ExtractionError("unsupported file type: OpenDocument file of another kind")
    raise ExtractionError("unsupported file type: ZIP archive (not an office document or EPUB)")


def _mimetype_member(archive: zipfile.ZipFile) -> str:
    """The "mimetype" member of an ODF or EPUB package: a few bytes, read only if small."""
    info = archive.getinfo("mimetype")
    if info.file_size > 100:
        return ""
    try:
        return archive.read(info).decode("ascii", errors="replace").strip()
    except Exception:  # damaged member: the reader will say so
        return ""


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
    for magic, image_type in _IMAGES:
        if head.startswith(magic):
            return check_image(data, image_type)  # header and size only, no pixels
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_type(data, extension)
    if head.startswith(b"{\\rtf"):
        return RTF

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


def _looks_like_email(head: str) -> bool:
    """An RFC 5322 message: the text opens with a block of header lines ("Name: value" or
    folded continuations) that names at least two of the usual headers."""
    header_block = head.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = header_block.split("\n")
    if len(lines) < 2 or not _HEADER_LINE.match(lines[0]):
        return False
    names = set()
    for line in lines:
        if line[:1] in (" ", "\t"):
            continue  # a folded continuation
        match = _HEADER_LINE.match(line)
        if match is None:
            return False
        names.add(match.group(1).lower())
    return len(names & _EMAIL_HEADERS) >= 2


def _text_type(text: str, extension: str) -> str:
    if _looks_like_email(text):
        return EML
    if _looks_like_html(text):
        return HTML
    if extension in (".csv", ".tsv"):
        return CSV

    if extension in (".html", ".htm", ".xhtml"):
        return HTML
    if extension in (".md", ".markdown", ".mdown", ".mkd"):
        return MARKDOWN
    if extension != ".txt" and looks_like_markdown(text):
        return MARKDOWN
    return PLAIN

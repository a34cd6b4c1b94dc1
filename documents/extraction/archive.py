"""Limits for ZIP-based formats (DOCX, XLSX, PPTX, ODT/ODS/ODP, EPUB), checked before any
parser sees the archive.

Deflate shrinks repetitive XML about 1000:1, so a small upload can expand to gigabytes,
and the format libraries read the parts they need fully into memory. The archive is
checked cheaply first (declared sizes from the central directory), then for real
(members streamed through a counter that stops at the limit). While streaming, XML that
declares entities is refused: no real office file or e-book declares any, and entity
expansion ("billion laughs") and external entities are how XML is turned into a weapon.
"""

from __future__ import annotations

import io
import zipfile

from .types import ExtractionError

MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
# Real documents compress text maybe 10-30:1; only a crafted member gets near deflate's
# ~1000:1. Small members are exempt: an empty-ish XML part can have any ratio.
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 10 * 1024 * 1024
MAX_MEMBERS = 10_000

_READ_CHUNK = 1024 * 1024
_ENTITY = b"<!ENTITY"
_XML_SUFFIXES = (".xml", ".rels", ".xhtml", ".html", ".htm", ".opf", ".ncx", ".rdf")


def zip_bomb_message(label: str) -> str:
    return f"{label} expands past the size limit (possible zip bomb)"


def corrupt(label: str, exc: BaseException) -> ExtractionError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return ExtractionError(f"corrupt {label}: {reason[:120]}")


def _check_declared(members: list[zipfile.ZipInfo], label: str) -> None:
    """Declared sizes cost nothing and catch the honest bombs at once. (Overlapping
    entries that share one compressed stream add up here too.)"""
    if len(members) > MAX_MEMBERS:
        raise ExtractionError(f"{label} has too many parts ({len(members)}; at most {MAX_MEMBERS})")
    declared = 0
    for info in members:
        declared += info.file_size
        if info.file_size > MAX_UNCOMPRESSED_BYTES or declared > MAX_UNCOMPRESSED_BYTES:
            raise ExtractionError(zip_bomb_message(label))
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise ExtractionError(zip_bomb_message(label))


def _stream(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, total: int) -> int:
    """Decompress one member and discard it; returns the running total of bytes."""
    is_xml = info.filename.lower().endswith(_XML_SUFFIXES)
    tail = b""
    try:
        with archive.open(info) as member:
            while chunk := member.read(_READ_CHUNK):
                total += len(chunk)
                if total > MAX_UNCOMPRESSED_BYTES:
                    raise ExtractionError(zip_bomb_message(label))
                # The marker may straddle two reads: keep the end of the previous one.
                if is_xml and (_ENTITY in chunk or _ENTITY in tail + chunk[: len(_ENTITY)]):
                    raise ExtractionError(f"{label} declares XML entities (not allowed)")
                tail = chunk[-len(_ENTITY) :]
    except ExtractionError:
        raise
    except Exception as exc:  # bad CRC, unsupported compression, encryption...
        raise corrupt(label, exc) from exc
    return total


def check_zip(data: bytes, *, label: str, required: str, first: str | None = None) -> None:
    """Raise ExtractionError unless ``data`` is a ZIP holding ``required`` that stays
    within the size limits. ``first`` is streamed first: the part a bomb would inflate.

    Memory stays bounded by the read chunk: members are decompressed and discarded.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise ExtractionError(f"corrupt {label}: not a valid ZIP archive") from None
    with archive:
        members = archive.infolist()
        _check_declared(members, label)
        if required not in archive.namelist():
            raise ExtractionError(f"corrupt {label}: {required} is missing")
        # Declared sizes can lie, so count what the members really expand to. (CPython's
        # reader also stops at the declared size and then fails the CRC check; this does
        # not rely on that.)
        total = 0
        for info in sorted(members, key=lambda info: info.filename != (first or required)):
            total = _stream(archive, info, label, total)

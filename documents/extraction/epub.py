"""EPUB e-books: a ZIP of XHTML chapters, read with zipfile and the HTML extractor (no
AGPL e-book library). The OPF package file (found through META-INF/container.xml) gives
the title, author and date and the spine, the chapters' reading order; each chapter
opens with its title as a heading when it has no heading of its own.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from typing import Any

from defusedxml import ElementTree

from .archive import check_zip, corrupt
from .html import parse_html
from .text import Parsed, Segment, one_line
from .types import ExtractionError

_CONTAINER = "META-INF/container.xml"
_OPF_NS = "{http://www.idpf.org/2007/opf}"
_DC_NS = "{http://purl.org/dc/elements/1.1/}"
_CONTAINER_NS = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_MAX_CHAPTERS = 5000


def _xml(archive: zipfile.ZipFile, name: str) -> Any:
    try:
        return ElementTree.fromstring(archive.read(name))
    except KeyError:
        raise ExtractionError(f"corrupt EPUB: {name} is missing") from None
    except Exception as exc:  # defusedxml refuses entities; ParseError on bad XML
        raise corrupt("EPUB", exc) from exc


def _package_path(archive: zipfile.ZipFile) -> str:
    container = _xml(archive, _CONTAINER)
    rootfile = container.find(f".//{_CONTAINER_NS}rootfile")
    path = rootfile.get("full-path") if rootfile is not None else None
    if not path:
        raise ExtractionError("corrupt EPUB: no package file named in container.xml")
    return str(path)


def _spine(package: Any, base: str) -> list[str]:
    manifest = {
        item.get("id"): item.get("href")
        for item in package.iter(f"{_OPF_NS}item")
        if item.get("id") and item.get("href")
    }
    paths: list[str] = []
    for ref in package.iter(f"{_OPF_NS}itemref"):
        href = manifest.get(ref.get("idref"))
        if href:
            paths.append(posixpath.normpath(posixpath.join(base, href.split("#")[0])))
    return paths[:_MAX_CHAPTERS]


def _metadata(package: Any, parsed: Parsed) -> None:
    found = {
        "title": package.find(f".//{_DC_NS}title"),
        "author": package.find(f".//{_DC_NS}creator"),
        "date": package.find(f".//{_DC_NS}date"),
    }
    values = {key: one_line(node.text or "") for key, node in found.items() if node is not None}
    parsed.title = values.pop("title", "") or None
    parsed.metadata = {key: value for key, value in values.items() if value}


def _chapter(data: bytes) -> list[Segment]:
    chapter = parse_html(data)
    segments = chapter.segments
    if segments and not segments[0].is_heading and chapter.title:
        heading = Segment(chapter.title, heading_path=(chapter.title,), is_heading=True)
        segments = [heading, *(_under(s, chapter.title) for s in segments)]
    return segments


def _under(segment: Segment, title: str) -> Segment:
    path = (title, *segment.heading_path)
    return Segment(segment.text, segment.page, path, segment.is_heading)


def parse_epub(data: bytes) -> Parsed:
    check_zip(data, label="EPUB", required=_CONTAINER)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise corrupt("EPUB", exc) from exc
    with archive:
        package_path = _package_path(archive)
        package = _xml(archive, package_path)
        parsed = Parsed()
        _metadata(package, parsed)
        names = set(archive.namelist())
        for path in _spine(package, posixpath.dirname(package_path)):
            if path in names:
                parsed.segments.extend(_chapter(archive.read(path)))
    return parsed

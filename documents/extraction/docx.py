"""Word .docx to blocks with python-docx, after checking the archive is not a zip bomb.

A DOCX is a ZIP archive; deflate shrinks repetitive XML about 1000:1, so a small upload
can expand to gigabytes, and python-docx reads every part it needs fully into memory.
The archive is therefore checked first, cheaply (declared sizes from the central
directory) and then for real (members streamed through a counter that stops at the
limit), before python-docx sees it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import docx
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml.ns import qn

from .archive import MAX_UNCOMPRESSED_BYTES, check_zip, corrupt, zip_bomb_message
from .tables import RowBudget, table_segments
from .text import HeadingTracker, Parsed, Segment, one_line
from .types import ExtractionError

MAX_DOCX_UNCOMPRESSED_BYTES = MAX_UNCOMPRESSED_BYTES
ZIP_BOMB = zip_bomb_message("DOCX")

_P, _TBL, _TR, _TC = qn("w:p"), qn("w:tbl"), qn("w:tr"), qn("w:tc")
_SDT, _SDT_CONTENT, _CUSTOM_XML = qn("w:sdt"), qn("w:sdtContent"), qn("w:customXml")
_T, _TAB, _BR, _CR = qn("w:t"), qn("w:tab"), qn("w:br"), qn("w:cr")
_NO_BREAK_HYPHEN = qn("w:noBreakHyphen")
# Inside a paragraph: properties, deleted text (tracked changes) and drawings (text boxes
# come twice, as DrawingML and as a VML fallback) are not part of the running text.
_SKIPPED_INLINE = frozenset(
    {
        qn("w:pPr"),
        qn("w:rPr"),
        qn("w:del"),
        qn("w:drawing"),
        qn("w:pict"),
        qn("w:instrText"),
        qn("w:delText"),
        qn("w:object"),
        "{http://schemas.openxmlformats.org/markup-compatibility/2006}AlternateContent",
    }
)
_HEADING_NAME = re.compile(r"heading ([1-9])")


def _corrupt(exc: BaseException) -> ExtractionError:
    return corrupt("DOCX", exc)


def check_archive(data: bytes) -> None:
    """Raise ExtractionError unless ``data`` is a ZIP within the limits of archive.py."""
    check_zip(data, label="DOCX", required="word/document.xml")


def _style_level(style: Any) -> int | None:
    """Heading level of a paragraph style (0 for Title), following its base styles, so a
    custom "My Heading" based on "Heading 2" counts as a level-2 heading."""
    seen = 0
    while style is not None and seen < 20:  # base-style chains can be cyclic in bad files
        name = (style.name or "").strip().lower()
        if name == "title":
            return 0
        if (match := _HEADING_NAME.fullmatch(name)) is not None:
            return int(match.group(1))
        outline = style.element.xpath("./w:pPr/w:outlineLvl/@w:val")
        if outline and outline[0].isdigit() and int(outline[0]) < 9:
            return int(outline[0]) + 1
        style = style.base_style
        seen += 1
    return None


def _heading_levels(document: Any) -> dict[str, int]:
    try:
        styles = [s for s in document.styles if s.type == WD_STYLE_TYPE.PARAGRAPH]
        levels = {s.style_id: _style_level(s) for s in styles}
    except Exception:  # a damaged styles part only costs us the headings
        return {}
    return {style_id: level for style_id, level in levels.items() if level is not None}


def _content(parent: Any) -> Iterator[Any]:
    """Paragraphs and tables of a body or cell in document order, looking through
    content controls (w:sdt) and custom XML wrappers that python-docx would skip."""
    for child in parent.iterchildren():
        if child.tag in (_P, _TBL):
            yield child
        elif child.tag == _SDT:
            content = child.find(_SDT_CONTENT)
            if content is not None:
                yield from _content(content)
        elif child.tag == _CUSTOM_XML:
            yield from _content(child)


def _paragraph_text(element: Any, parts: list[str] | None = None) -> str:
    """Visible text of a paragraph, including runs in hyperlinks, tracked insertions,
    fields and inline content controls (python-docx's Paragraph.text misses some)."""
    parts = [] if parts is None else parts
    for child in element.iterchildren():
        tag = child.tag
        if tag == _T:
            parts.append(child.text or "")
        elif tag == _TAB:
            parts.append("\t")
        elif tag in (_BR, _CR):
            parts.append("\n")
        elif tag == _NO_BREAK_HYPHEN:
            parts.append("-")
        elif isinstance(tag, str) and tag not in _SKIPPED_INLINE:
            _paragraph_text(child, parts)
    return "".join(parts)


def _table_rows(table: Any) -> Iterator[list[str]]:
    """One text per cell, row by row; a nested table's text stays in its cell."""
    for row in table.iterchildren(_TR):
        yield [_cell_text(cell) for cell in row.iterchildren(_TC)]


def _cell_text(cell: Any) -> str:
    texts: list[str] = []
    for element in _content(cell):
        if element.tag == _P:
            texts.append(_paragraph_text(element))
        else:
            texts.extend(" ".join(row) for row in _table_rows(element))
    return " ".join(texts)


def _core_title(document: Any) -> str | None:
    try:
        return one_line(document.core_properties.title or "") or None
    except Exception:  # damaged docProps/core.xml: the title is optional
        return None


def parse_docx(data: bytes) -> Parsed:
    check_archive(data)
    try:
        document = docx.Document(io.BytesIO(data))
    except ValueError as exc:
        if "is not a Word file" in str(exc):  # .docm/.dotx: a main part python-docx refuses
            raise ExtractionError(
                "unsupported file type: Word macro-enabled document or template; save it as .docx"
            ) from exc
        raise _corrupt(exc) from exc
    except Exception as exc:  # python-docx and lxml raise many types on bad input
        raise _corrupt(exc) from exc

    levels = _heading_levels(document)
    parsed = Parsed()
    headings = HeadingTracker()
    budget = RowBudget()
    title_paragraph: str | None = None
    first_h1: str | None = None
    for element in _content(document.element.body):
        if element.tag == _TBL:
            rows = _table_rows(element)
            path = headings.path
            parsed.segments.extend(table_segments(rows, heading_path=path, budget=budget))
            continue
        text = _paragraph_text(element)
        level = levels.get(element.style) if element.style else None
        heading = one_line(text) if level is not None else ""
        if level is not None and heading:
            path = headings.enter(level, heading)
            parsed.segments.append(Segment(heading, heading_path=path, is_heading=True))
            if level == 0 and title_paragraph is None:
                title_paragraph = heading
            elif level == 1 and first_h1 is None:
                first_h1 = heading
        else:
            parsed.segments.append(Segment(text, heading_path=headings.path))
    # The visible Title paragraph beats metadata, which is often stale ("Template").
    parsed.title = title_paragraph or _core_title(document) or first_h1
    return parsed

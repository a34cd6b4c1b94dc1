"""PowerPoint .pptx with python-pptx: the slide number is the page, the slide title the
heading, then the slide's text boxes in shape order, its tables as tables, and the
speaker notes. python-pptx never runs macros (a .pptm's VBA part is not read)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pptx
from django.conf import settings
from pptx.enum.shapes import MSO_SHAPE_TYPE

from .archive import check_zip, corrupt
from .tables import RowBudget, table_segments
from .text import Parsed, Segment, one_line
from .types import ExtractionError

_MAX_GROUP_DEPTH = 20


def _shapes(shapes: Any, depth: int = 0) -> Iterator[Any]:
    """Shapes in reading order, group shapes opened (a bad file may nest them deeply)."""
    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP and depth < _MAX_GROUP_DEPTH:
            yield from _shapes(shape.shapes, depth + 1)
        else:
            yield shape


def _table_rows(shape: Any) -> Iterator[list[str]]:
    for row in shape.table.rows:
        yield [cell.text for cell in row.cells]


def _slide_segments(slide: Any, number: int, budget: RowBudget) -> list[Segment]:
    title_shape = slide.shapes.title
    title = one_line(title_shape.text_frame.text) if title_shape is not None else ""
    path = (title,) if title else ()
    segments: list[Segment] = []
    if title:
        segments.append(Segment(title, page=number, heading_path=path, is_heading=True))
    for shape in _shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            rows = _table_rows(shape)
            segments.extend(table_segments(rows, heading_path=path, page=number, budget=budget))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            for paragraph in shape.text_frame.paragraphs:
                segments.append(Segment(paragraph.text, page=number, heading_path=path))
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            segments.append(Segment(f"Notes: {notes.text}", page=number, heading_path=path))
    return segments


def parse_pptx(data: bytes) -> Parsed:
    check_zip(data, label="PPTX", required="ppt/presentation.xml")
    try:
        presentation = pptx.Presentation(io.BytesIO(data))
    except Exception as exc:  # python-pptx and lxml raise many types on bad input
        raise corrupt("PPTX", exc) from exc
    slides = presentation.slides
    if len(slides) > settings.EXTRACTION_MAX_SLIDES:
        raise ExtractionError(
            f"too many slides: {len(slides)} (at most {settings.EXTRACTION_MAX_SLIDES}, "
            "EXTRACTION_MAX_SLIDES)"
        )
    parsed = Parsed(page_count=len(slides))
    budget = RowBudget()
    try:
        for number, slide in enumerate(slides, start=1):
            parsed.segments.extend(_slide_segments(slide, number, budget))
    except ExtractionError:
        raise
    except Exception as exc:  # python-pptx reads slide parts lazily, while iterating
        raise corrupt("PPTX", exc) from exc
    props = presentation.core_properties
    parsed.title = one_line(props.title or "") or None
    found = {"author": props.author, "created": props.created, "modified": props.modified}
    parsed.metadata = {key: str(value) for key, value in found.items() if value}
    return parsed

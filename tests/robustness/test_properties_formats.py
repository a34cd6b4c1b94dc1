"""Property tests for the formats of issue 18, like tests/robustness/test_properties.py:

- every extractor, fed damaged versions of a real file (bytes flipped, spliced, cut; the
  main XML part damaged inside an intact archive), extracts a well-formed result or
  refuses with a message of its own, never crashes and never hangs;
- any spreadsheet (random cells, any script, long cells, empty rows) chunks soundly, and
  no chunk begins or ends inside a row that fits a chunk.

Examples are few per format (CI time): the damage is what varies, not the file.
"""

from __future__ import annotations

import io
import zipfile
from multiprocessing.pool import Pool
from typing import Any

import openpyxl
import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.extraction import extract
from tests.documents import test_formats as builders
from tests.robustness.test_properties import (
    FLIPS,
    NOISE,
    WORD,
    _assert_chunking_is_sound,
    _assert_extracts_or_refuses,
    _damage,
    _damaged,
    worker,  # noqa: F401 - the fixture
)

# Built once: the e-mail package draws MIME boundaries from `random`, which Hypothesis
# does not allow inside a strategy.
EML = builders.make_eml(b"1. check oil\n")

REAL = {
    "pptx": (builders.make_pptx, "ppt/slides/slide1.xml", "a.pptx"),
    "xlsx": (builders.make_xlsx, "xl/worksheets/sheet1.xml", "a.xlsx"),
    "odt": (builders.make_odt, "content.xml", "a.odt"),
    "ods": (builders.make_ods, "content.xml", "a.ods"),
    "odp": (builders.make_odp, "content.xml", "a.odp"),
    "epub": (builders.make_epub, "OEBPS/text/one.xhtml", "a.epub"),
}


def _with_part(data: bytes, part: str, transform: Any) -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info.filename, transform(content) if info.filename == part else content)
    return out.getvalue()


def _damaged_part(build: Any, part: str) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda cut, flips, splice: _with_part(
            build(), part, lambda xml: _damage(xml, cut, flips, splice)
        ),
        st.integers(0, 10**6),
        FLIPS,
        st.binary(max_size=64),
    )


FORMATS = {
    kind: st.tuples(_damaged(build) | _damaged_part(build, part), st.just(name))
    for kind, (build, part, name) in REAL.items()
}
FORMATS["eml"] = st.tuples(
    st.builds(lambda noise: EML + noise, NOISE) | _damaged(lambda: EML),
    st.just("a.eml"),
)
FORMATS["rtf"] = st.tuples(
    st.builds(lambda noise: b"{\\rtf1 " + noise, NOISE) | _damaged(lambda: builders.RTF),
    st.just("a.rtf"),
)
FORMATS["csv"] = st.tuples(NOISE, st.just("a.csv"))


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_new_extractors_on_damaged_files_extract_or_refuse_clearly(
    worker: list[Pool],  # noqa: F811 - the fixture imported above
    kind: str,
) -> None:
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(upload=FORMATS[kind])
    def check(upload: tuple[bytes, str]) -> None:
        _assert_extracts_or_refuses(worker, *upload)

    check()


CELL = st.one_of(
    st.none(),
    st.integers(-(10**9), 10**9),
    st.lists(WORD, min_size=1, max_size=8).map(" ".join),
    st.lists(WORD, min_size=30, max_size=120).map(" ".join),  # a cell too long for a chunk
)
SHEET = st.lists(st.lists(CELL, min_size=1, max_size=6), min_size=1, max_size=60)


def _xlsx(rows: list[list[Any]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rows=SHEET)
def test_any_spreadsheet_chunks_soundly_and_keeps_rows_whole(rows: list[list[Any]]) -> None:
    extracted = extract(_xlsx(rows), filename="a.xlsx")
    max_tokens = django_settings.CHUNK_MAX_TOKENS
    chunks = _assert_chunking_is_sound(extracted, max_tokens, django_settings.CHUNK_OVERLAP_TOKENS)
    edges = {c.start for c in chunks} | {c.end for c in chunks}
    for block in extracted.blocks:
        inside = [edge for edge in edges if block.start < edge < block.end]
        fits = [c for c in chunks if c.start <= block.start and block.end <= c.end]
        # A row is cut only when no chunk could hold it whole.
        assert not inside or not fits, extracted.text[block.start : block.end][:80]

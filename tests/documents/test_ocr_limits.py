"""Limits of OCR's own steps (issue 18): PDFium's render of a scanned page has a time and
memory limit (documents/extraction/pdf_render.py), and a language pack installed after
the worker started is seen without a restart."""

from __future__ import annotations

import io
import shutil
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from documents.extraction import ExtractionError, extract, ocr, pdf_render
from documents.extraction.ocr import MAX_PIXELS, NO_TESSERACT, OcrOptions, unavailable
from tests.factories import CollectionFactory

TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")


def _pdf(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1))
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n" % (dictionary, len(data)) + data + b"\nendstream"


def _scanned_page(content: bytes, image: bytes, *, size: int) -> bytes:
    """One page without text that shows an image (so it counts as a scan)."""
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (size, size)
            + b"/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
            _stream(b"/Filter /FlateDecode", zlib.compress(content, 9)),
            image,
        ]
    )


def _tiny_image() -> bytes:
    return _stream(
        b"/Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8",
        b"\x80",
    )


def _slow_page() -> bytes:
    """A 1 KB "scan" on the largest MediaBox the format allows (200 inches square) that
    strokes 20,000 lines across it: PDFium needs minutes for it at MAX_PIXELS."""
    content = b"q /Im0 Do Q\n" + b"0 0 m 14400 14400 l S\n" * 20_000
    return _scanned_page(content, _tiny_image(), size=14_400)


def _options(timeout: float) -> OcrOptions:
    return OcrOptions(languages="eng", page_timeout=timeout, max_pages=10)


def test_a_page_that_renders_for_minutes_fails_with_the_reason_in_seconds() -> None:
    started = time.monotonic()
    with pytest.raises(ExtractionError) as caught:
        extract(_slow_page(), filename="slow.pdf", ocr=_options(3))
    assert str(caught.value) == ("rendering page 1 for OCR took longer than 3 s (OCR_PAGE_TIMEOUT)")
    # The child's start has its own budget; the page itself is cut at 3 s.
    assert time.monotonic() - started < pdf_render.START_TIMEOUT


def test_the_renderer_of_a_timed_out_page_is_gone() -> None:
    renderer = pdf_render.PageRenderer(_slow_page(), _options(2))
    with pytest.raises(ExtractionError, match="took longer than 2 s"):
        renderer.render(1)
    assert renderer._process is None  # killed, not left rendering in the background
    renderer.close()


def test_a_page_over_the_renderers_memory_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A page of 200 x 200 inches is rendered at MAX_PIXELS (40 MB in grey, and PDFium's
    # own buffers): more than the child's address space holds when it is capped this low.
    monkeypatch.setattr(pdf_render, "RENDER_MEMORY_BYTES", 150 * 1024**2)
    data = _scanned_page(b"q 14400 0 0 14400 0 0 cm /Im0 Do Q\n", _tiny_image(), size=14_400)
    with pytest.raises(ExtractionError) as caught:
        extract(data, filename="huge.pdf", ocr=_options(30))
    assert str(caught.value) == "rendering page 1 for OCR needs more memory than 150 MB"


def test_a_huge_page_renders_at_the_pixel_cap_within_the_default_memory() -> None:
    data = _scanned_page(b"q 14400 0 0 14400 0 0 cm /Im0 Do Q\n", _tiny_image(), size=14_400)
    with pdf_render.PageRenderer(data, _options(60)) as renderer:
        width, height = renderer.render(1).size
    assert width * height <= MAX_PIXELS


def test_ordinary_scanned_pages_still_render_in_the_child() -> None:
    # A small page: the child renders it and hands the pixels back.
    data = _scanned_page(b"q 100 0 0 100 0 0 cm /Im0 Do Q\n", _tiny_image(), size=200)
    with pdf_render.PageRenderer(data, _options(30)) as renderer:
        image = renderer.render(1)
        again = renderer.render(1)  # the same child serves every page of the document
    assert image.mode == "L"
    assert image.size == again.size == (834, 834)  # 200 pt at 300 dpi, rounded up


def test_a_language_pack_installed_after_start_is_seen_without_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("eng.traineddata", "osd.traineddata"):
        shutil.copy(TESSDATA / name, tmp_path / name)
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))
    ocr._installed_languages.cache_clear()  # a worker starting with these packs
    german = OcrOptions(languages="deu", page_timeout=30, max_pages=10)
    reasons = {"off": "off", "no_binary": NO_TESSERACT}
    # The worker has listed the packs once (the list is cached) ...
    assert unavailable(_options(30), **reasons) is None
    assert (unavailable(german, **reasons) or "").startswith("OCR language pack not installed")
    # ... then an operator installs tesseract-ocr-deu.
    shutil.copy(TESSDATA / "deu.traineddata", tmp_path / "deu.traineddata")
    assert unavailable(german, **reasons) is None


def test_a_missing_pack_still_fails_the_document(ingest: Any, settings: Any) -> None:
    settings.OCR_LANGUAGES = "qqq"
    collection = CollectionFactory.create(search_config="simple")
    (document,) = ingest(collection, {"slow.pdf": _slow_page()})
    assert document.status == "failed"
    assert document.error.startswith("OCR language pack not installed: qqq")


@pytest.fixture(autouse=True)
def _forget_the_packs() -> Iterator[None]:
    """The next test lists the packs of the real tessdata again, not those of tmp_path."""
    yield
    ocr._installed_languages.cache_clear()

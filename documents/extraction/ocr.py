"""OCR of page images with Tesseract, through pytesseract (a thin wrapper that runs the
``tesseract`` binary once per image, with a timeout, so a stuck page cannot hang a worker).

Used by pdf.py for pages without a text layer and by image.py for PNG/JPEG/TIFF. Only the
pipeline (the worker) passes :class:`OcrOptions` to ``extract``; without them no OCR runs,
so uploads, fuzzers and benchmarks never start Tesseract by accident.

The OCR language follows the collection's text-search language (``search_config``)
through :data:`TESSERACT_LANGUAGES`; ``simple`` and configurations without a mapping use
``settings.OCR_LANGUAGES`` (default ``eng``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image

from .types import ExtractionError

logger = logging.getLogger(__name__)

# PostgreSQL text-search configuration -> Tesseract language pack (Debian package
# tesseract-ocr-<code>).
TESSERACT_LANGUAGES: dict[str, str] = {
    "arabic": "ara",
    "armenian": "hye",
    "basque": "eus",
    "catalan": "cat",
    "danish": "dan",
    "dutch": "nld",
    "english": "eng",
    "finnish": "fin",
    "french": "fra",
    "german": "deu",
    "greek": "ell",
    "hindi": "hin",
    "hungarian": "hun",
    "indonesian": "ind",
    "irish": "gle",
    "italian": "ita",
    "lithuanian": "lit",
    "nepali": "nep",
    "norwegian": "nor",
    "portuguese": "por",
    "romanian": "ron",
    "russian": "rus",
    "serbian": "srp",
    "spanish": "spa",
    "swedish": "swe",
    "tamil": "tam",
    "turkish": "tur",
    "yiddish": "yid",
}

OCR_OFF = "no text layer; OCR is off"
NO_TESSERACT = "no text layer; install tesseract-ocr to read scanned pages"
IMAGE_OCR_OFF = "image: OCR is off, so its text cannot be read"
IMAGE_NO_TESSERACT = "image: install tesseract-ocr to read the text of images"

# A page is rendered at this resolution for Tesseract, which reads body text best at
# about 300 dpi; a huge page is rendered smaller so it stays under MAX_PIXELS.
RENDER_DPI = 300
# Pixels of one page handed to Tesseract (and of one image frame accepted): an A4 page at
# 300 dpi is 8.7 million; this bounds the memory a "decompression bomb" can take.
MAX_PIXELS = 40_000_000

Progress = Callable[[int, int], None]  # (pages done, pages in total)
# The share of a task's time limit kept for what follows OCR (chunking, embedding).
_EMBEDDING_SHARE = 0.25


@dataclass(frozen=True)
class OcrOptions:
    languages: str  # Tesseract's -l argument, e.g. "eng" or "eng+deu"
    page_timeout: float  # seconds for one page
    max_pages: int  # pages to OCR in one document, at most
    progress: Progress | None = None
    # time.monotonic() after which no page starts: OCR must end before the task's time
    # limit kills the worker with the document's work (see ocr_options).
    deadline: float | None = None
    # Other documents used part of this task's time: running out is then no reason to
    # fail this one, it is retried in a task of its own (OcrOutOfTime).
    shares_task: bool = False


class OcrOutOfTime(Exception):
    """The task's time ran out before OCR was done; the pipeline retries the document
    later, in a task of its own with the whole time limit."""


def tesseract_languages(search_config: str | None, default: str = "eng") -> str:
    """The Tesseract languages for a collection's text-search configuration."""
    return TESSERACT_LANGUAGES.get((search_config or "").strip().lower(), default or "eng")


def ocr_options(
    search_config: str | None,
    *,
    progress: Progress | None = None,
    task_deadline: float | None = None,
) -> OcrOptions | None:
    """The worker's OCR options for a collection, from the settings; None when OCR=off.

    ``task_deadline`` (time.monotonic()) is when the task must be done: OCR stops a
    quarter of the task's time limit before it, leaving that for embedding.
    """
    from django.conf import settings  # the extractors stay importable without Django

    if not settings.OCR:
        return None
    deadline: float | None = None
    shares_task = False
    if task_deadline is not None:
        deadline = task_deadline - settings.TASK_TIMEOUT * _EMBEDDING_SHARE
        shares_task = task_deadline - time.monotonic() < settings.TASK_TIMEOUT * 0.9
    return OcrOptions(
        languages=tesseract_languages(search_config, settings.OCR_LANGUAGES),
        page_timeout=float(settings.OCR_PAGE_TIMEOUT),
        max_pages=settings.OCR_MAX_PAGES,
        progress=progress,
        deadline=deadline,
        shares_task=shares_task,
    )


def out_of_time(options: OcrOptions, page: int) -> Exception:
    if options.shares_task:
        return OcrOutOfTime(f"OCR stopped at page {page}: the task's time ran out")
    return ExtractionError(
        f"OCR needs more time than a task has: stopped at page {page} (raise TASK_TIMEOUT "
        "or lower OCR_MAX_PAGES)"
    )


@lru_cache(maxsize=1)
def _installed_languages() -> frozenset[str]:
    import pytesseract

    return frozenset(pytesseract.get_languages(config=""))


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


def unavailable(options: OcrOptions | None, *, off: str, no_binary: str) -> str | None:
    """Why OCR cannot run here (the user-facing reason), or None when it can: OCR is off,
    the tesseract binary or a requested language pack is not installed."""
    if options is None:
        return off
    if not tesseract_available():
        return no_binary
    wanted = [code for code in options.languages.split("+") if code]
    missing = [code for code in wanted if code not in _installed_languages()]
    if missing:
        # The list is cached for the worker's life; a pack installed since it started
        # must not need a restart, so a miss lists the packs again (one subprocess).
        _installed_languages.cache_clear()
        missing = [code for code in wanted if code not in _installed_languages()]
    if missing:
        packages = " ".join(f"tesseract-ocr-{code}" for code in missing)
        return (
            f"OCR language pack not installed: {', '.join(missing)} (install {packages}, "
            "or change the collection's language or OCR_LANGUAGES)"
        )
    return None


def check_page_count(pages: int, options: OcrOptions, *, what: str) -> None:
    if pages > options.max_pages:
        raise ExtractionError(
            f"{what}: {pages} pages need OCR, more than the limit of {options.max_pages} "
            "(OCR_MAX_PAGES)"
        )


def check_pixels(width: int, height: int, *, what: str) -> None:
    if width * height > MAX_PIXELS:
        raise ExtractionError(
            f"{what} too large for OCR: {width}x{height} pixels (the limit is "
            f"{MAX_PIXELS:,} pixels)"
        )


def for_tesseract(image: Image.Image) -> Image.Image:
    """A grayscale copy; transparent areas become white (not black, which would hide
    dark text on a transparent background)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert("L")


@contextmanager
def _one_thread() -> Iterator[None]:
    """Tesseract's OpenMP threads spin against each other (and the embedding model) on a
    busy machine: a page took 31 s with them and 6 s without on 2 loaded cores. The limit
    is set only while Tesseract starts (its environment is read at exec), and an operator's
    own OMP_THREAD_LIMIT wins."""
    if "OMP_THREAD_LIMIT" in os.environ:
        yield
        return
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        yield
    finally:
        os.environ.pop("OMP_THREAD_LIMIT", None)


def ocr_image(image: Image.Image, options: OcrOptions, *, page: int) -> str:
    """The text Tesseract reads on one page image."""
    import pytesseract

    timeout = options.page_timeout
    if options.deadline is not None:
        remaining = options.deadline - time.monotonic()
        if remaining <= 0:
            raise out_of_time(options, page)
        timeout = min(timeout, remaining)
    try:
        with _one_thread():
            return str(
                pytesseract.image_to_string(
                    for_tesseract(image), lang=options.languages, timeout=timeout
                )
            )
    except RuntimeError as exc:  # pytesseract's timeout
        if "timeout" in str(exc).lower():
            if timeout < options.page_timeout:  # cut short by the task's deadline
                raise out_of_time(options, page) from None
            raise ExtractionError(
                f"OCR of page {page} took longer than {options.page_timeout:g} s (OCR_PAGE_TIMEOUT)"
            ) from None
        raise
    except pytesseract.TesseractNotFoundError:
        raise ExtractionError(NO_TESSERACT) from None
    except pytesseract.TesseractError as exc:
        logger.warning("tesseract failed on page %d: %s", page, exc)
        message = " ".join(str(exc.message).split())[:120]
        raise ExtractionError(f"OCR of page {page} failed: {message}") from None


def report(options: OcrOptions, done: int, total: int) -> None:
    """Pages read so far; a failing progress report never fails the document."""
    if options.progress is None:
        return
    try:
        options.progress(done, total)
    except Exception:
        logger.warning("OCR progress report failed", exc_info=True)

"""PNG, JPEG and TIFF images: OCR'd page by page (each frame of a multi-page TIFF is a
page), with Pillow to decode and Tesseract to read (ocr.py).

Images are only read in the worker: without OCR options (OCR=off, or a caller that is
not the pipeline) an image fails with a reason instead of ending up empty.
"""

from __future__ import annotations

import io
import logging
import warnings

from PIL import Image, UnidentifiedImageError

from .ocr import (
    IMAGE_NO_TESSERACT,
    IMAGE_OCR_OFF,
    OcrOptions,
    check_page_count,
    check_pixels,
    ocr_image,
    report,
    unavailable,
)
from .text import Parsed, Segment, clean, paragraphs
from .types import ExtractionError

logger = logging.getLogger(__name__)

_FORMATS = ("PNG", "JPEG", "TIFF")


def parse_image(data: bytes, ocr: OcrOptions | None = None) -> Parsed:
    reason = unavailable(ocr, off=IMAGE_OCR_OFF, no_binary=IMAGE_NO_TESSERACT)
    if reason is not None or ocr is None:
        raise ExtractionError(reason or IMAGE_OCR_OFF)
    with _open(data) as image:
        frames = _frame_count(image)
        check_page_count(frames, ocr, what="image")
        parsed = Parsed(page_count=frames)
        report(ocr, 0, frames)
        for number in range(1, frames + 1):
            text = ocr_image(_frame(image, number), ocr, page=number)
            for paragraph in paragraphs(clean(text)):
                parsed.segments.append(Segment(paragraph, page=number))
            report(ocr, number, frames)
    if not any(segment.text.strip() for segment in parsed.segments):
        raise ExtractionError("no extractable text: OCR found no text in the image")
    return parsed


def check_image(data: bytes, mime_type: str) -> str:
    """At upload: the image's header can be read and its size is within MAX_PIXELS (no
    pixel is decoded here; that and OCR happen in the worker). Returns ``mime_type``."""
    label = mime_type.removeprefix("image/").upper() + " image"
    try:
        with _open(data) as image:
            check_pixels(*image.size, what=label)
    except ExtractionError as exc:
        if str(exc).startswith("corrupt image: "):
            reason = str(exc).removeprefix("corrupt image: ")
            raise ExtractionError(f"unsupported file type: damaged {label} ({reason})") from None
        raise
    return mime_type


def _open(data: bytes) -> Image.Image:
    try:
        # Pillow refuses far larger images itself (DecompressionBombError); the size is
        # checked against our own, lower, limit before any pixel is decoded.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ExtractionError(f"image too large: {exc}") from None
    except UnidentifiedImageError:
        raise ExtractionError("corrupt image: cannot identify the image format") from None
    except Exception as exc:
        # Pillow's decoders raise a wide set (OSError, SyntaxError, struct.error...) on
        # hostile headers; this runs at upload too, where anything else would be a 500.
        raise ExtractionError(f"corrupt image: {_short(exc)}") from None
    return image


def _frame_count(image: Image.Image) -> int:
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception as exc:  # a damaged frame chain
        raise ExtractionError(f"corrupt image: {_short(exc)}") from None


def _frame(image: Image.Image, number: int) -> Image.Image:
    """Frame ``number`` (1-based) with its pixels decoded; a truncated or damaged file is
    an error. Each frame's size is checked before its pixels are decoded."""
    try:
        image.seek(number - 1)
        check_pixels(*image.size, what=f"image page {number}")
        image.load()
    except ExtractionError:
        raise
    except Exception as exc:  # Pillow's decoders: OSError, SyntaxError, struct.error...
        raise ExtractionError(f"corrupt image (page {number}): {_short(exc)}") from None
    return image


def _short(exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."

"""The child process of pdf_render.py: renders the pages its parent asks for.

Run as a script (``python render_child.py``), not imported: it needs PDFium and Pillow
only, so it starts in a fraction of a second, and it talks to its parent over stdin and
stdout with multiprocessing's Connection framing. The first message is (PDF bytes,
memory limit in bytes, render dpi, pixel cap); then each message is a page number and
each answer ("page", (mode, size, pixels)) or ("error", reason); None ends it.
"""

from __future__ import annotations

import math
import os
import resource
import sys
from multiprocessing.connection import Connection
from typing import Any


def _short(exc: BaseException) -> str:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."


def render(document: Any, number: int, dpi: int, max_pixels: int) -> Any:
    """Page ``number`` as a grayscale image at ``dpi``, smaller if that would exceed
    ``max_pixels`` (a page can claim to be metres wide)."""
    page = document[number - 1]
    try:
        width, height = page.get_size()  # in points, 1/72 inch
        scale = min(dpi / 72, math.sqrt(max_pixels / max(width * height, 1.0)))
        # PDFium rounds the bitmap's sides up: shrink until the rounded size fits too.
        while math.ceil(width * scale) * math.ceil(height * scale) > max_pixels:
            scale *= 0.999
        return page.render(scale=scale, grayscale=True).to_pil().convert("L")
    finally:
        page.close()


def serve(requests: Connection, answers: Connection) -> None:
    data, memory, dpi, max_pixels = requests.recv()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    except (ValueError, OSError):  # a lower hard limit is already in place
        pass
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except Exception as exc:
        answers.send(("error", f"corrupt PDF: cannot render its scanned pages ({_short(exc)})"))
        return
    answers.send(("ready", None))
    while (number := requests.recv()) is not None:
        try:
            image = render(document, number, dpi, max_pixels)
            answers.send(("page", (image.mode, image.size, image.tobytes())))
        except MemoryError:
            limit = f"{memory // 1024**2} MB"
            answers.send(
                ("error", f"rendering page {number} for OCR needs more memory than {limit}")
            )
        except Exception as exc:
            answers.send(("error", f"corrupt PDF: cannot render page {number} ({_short(exc)})"))


if __name__ == "__main__":
    requests, answers = Connection(os.dup(0), writable=False), Connection(os.dup(1), readable=False)
    sys.stdout = sys.stderr  # a stray print must not corrupt the answers
    try:
        serve(requests, answers)
    except EOFError:  # the parent went away
        pass

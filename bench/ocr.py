"""Seconds per OCR'd page: a scanned PDF through the real extraction (render + Tesseract).

    .venv/bin/python bench/ocr.py [--pages 10] [--dpi 300] [--languages eng]

Makes a PDF of ``--pages`` image-only pages (each an A4 page of ~40 lines of body text
typeset by reportlab, rasterised by PDFium at ``--dpi`` like a scanner's output), then
times ``extract`` with OCR options as the worker passes them. Reports seconds per page
and the share of the page's words read back exactly. No database is needed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import pypdfium2 as pdfium  # noqa: E402
from PIL import Image  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.lib.utils import ImageReader  # noqa: E402
from reportlab.pdfgen import canvas  # noqa: E402

from documents.extraction import extract  # noqa: E402
from documents.extraction.ocr import OcrOptions  # noqa: E402

WORDS = (
    "the inspection report covers roof windows doors brakes engines invoices contracts "
    "payments deliveries warranty customer supplier quarterly annual budget figures table"
).split()


def _lines(page: int) -> list[str]:
    return [
        " ".join(WORDS[(page * 7 + line * 3 + k) % len(WORDS)] for k in range(11))
        for line in range(40)
    ]


def _scanned_page(lines: list[str], dpi: int) -> Image.Image:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setFont("Helvetica", 11)
    for number, line in enumerate(lines):
        pdf.drawString(60, 780 - 17 * number, line)
    pdf.showPage()
    pdf.save()
    document = pdfium.PdfDocument(buffer.getvalue())
    try:
        image: Image.Image = document[0].render(scale=dpi / 72, grayscale=True).to_pil()
        return image
    finally:
        document.close()


def _scanned_pdf(pages: list[Image.Image]) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for image in pages:
        pdf.drawImage(ImageReader(image), 0, 0, width=A4[0], height=A4[1])
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--dpi", type=int, default=300, help="resolution of the scans")
    parser.add_argument("--languages", default="eng")
    args = parser.parse_args()

    texts = [_lines(page) for page in range(args.pages)]
    data = _scanned_pdf([_scanned_page(lines, args.dpi) for lines in texts])
    options = OcrOptions(languages=args.languages, page_timeout=600, max_pages=args.pages)
    started = time.perf_counter()
    result = extract(data, filename="bench.pdf", ocr=options)
    seconds = time.perf_counter() - started

    expected = [word for lines in texts for line in lines for word in line.split()]
    read = re.findall(r"[a-z]+", result.text.lower())
    found = sum(min(expected.count(word), read.count(word)) for word in set(expected))
    print(
        json.dumps(
            {
                "pages": args.pages,
                "scan_dpi": args.dpi,
                "languages": args.languages,
                "seconds": round(seconds, 2),
                "seconds_per_page": round(seconds / args.pages, 2),
                "words_read_back": round(found / len(expected), 4),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

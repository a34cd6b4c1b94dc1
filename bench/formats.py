"""Documents/s for each format of issue 18 at a typical size, and the size of a chunk of
table rows: extraction + chunking as the worker runs them (no database, no embedding).

    .venv/bin/python bench/formats.py [--repeat 5] [--rows 2000] [--slides 30]

Typical sizes: a spreadsheet of --rows rows x 6 columns (XLSX, CSV, ODS), a deck of
--slides slides with a title, three bullets, a 5-row table and notes (PPTX), a 20-page
report (ODT), a 20-chapter e-book (EPUB), an e-mail with one attachment (EML), a
two-page letter (RTF), and two 20-page PDFs (--pdf-pages): one that is a ruled table
throughout and one of prose, each timed with and without table detection
(documents/extraction/pdf_tables.py), so the cost of finding PDF tables is the difference.
Prints one JSON line per format and a summary of table chunks (rows and tokens per chunk
of the XLSX).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

import openpyxl  # noqa: E402
import pptx  # noqa: E402
from odf.opendocument import OpenDocumentSpreadsheet, OpenDocumentText  # noqa: E402
from odf.table import Table, TableCell, TableRow  # noqa: E402
from odf.text import H, P  # noqa: E402
from pptx.util import Inches  # noqa: E402
from reportlab.lib import colors  # noqa: E402
from reportlab.lib.pagesizes import A4  # noqa: E402
from reportlab.lib.styles import getSampleStyleSheet  # noqa: E402
from reportlab.platypus import (  # noqa: E402
    Paragraph,
    SimpleDocTemplate,
    TableStyle,  # noqa: E402
)
from reportlab.platypus import Table as PdfTable  # noqa: E402

from documents.chunking import chunk_document  # noqa: E402
from documents.extraction import extract, pdf  # noqa: E402

SENTENCE = "The quarterly inspection found the pump bearings worn and the seals intact. "


def _row(i: int) -> list[str]:
    return [
        f"Item {i}",
        f"Site {i % 13}",
        f"{i * 7 % 1000}",
        f"2026-{i % 12 + 1:02d}-01",
        f"Batch {i % 97}",
        f"Checked by team {i % 5}. Notes follow.",
    ]


def xlsx(rows: int) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Item", "Site", "Count", "Date", "Batch", "Remark"])
    for i in range(rows):
        sheet.append(_row(i))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_file(rows: int) -> bytes:
    lines = ["Item,Site,Count,Date,Batch,Remark"] + [",".join(_row(i)) for i in range(rows)]
    return "\n".join(lines).encode()


def _odf_table(rows: list[list[str]], name: str) -> Table:
    table = Table(name=name)
    for values in rows:
        row = TableRow()
        table.addElement(row)
        for value in values:
            cell = TableCell()
            cell.addElement(P(text=value))
            row.addElement(cell)
    return table


def ods(rows: int) -> bytes:
    document = OpenDocumentSpreadsheet()
    header = ["Item", "Site", "Count", "Date", "Batch", "Remark"]
    document.spreadsheet.addElement(_odf_table([header] + [_row(i) for i in range(rows)], "S"))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_file(slides: int) -> bytes:
    deck = pptx.Presentation()
    for number in range(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Finding {number}"
        slide.placeholders[1].text_frame.text = SENTENCE * 3
        table = slide.shapes.add_table(5, 3, Inches(1), Inches(4), Inches(6), Inches(2)).table
        for r in range(5):
            for c in range(3):
                table.cell(r, c).text = f"r{r}c{c}"
        slide.notes_slide.notes_text_frame.text = SENTENCE
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def odt() -> bytes:
    document = OpenDocumentText()
    for page in range(20):
        document.text.addElement(H(outlinelevel=1, text=f"Section {page}"))
        for _ in range(6):
            document.text.addElement(P(text=SENTENCE * 5))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def epub() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("mimetype", "application/epub+zip")
        book.writestr(
            "META-INF/container.xml",
            '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="c.opf"/></rootfiles></container>',
        )
        items = "".join(f'<item id="c{i}" href="c{i}.xhtml"/>' for i in range(20))
        spine = "".join(f'<itemref idref="c{i}"/>' for i in range(20))
        book.writestr(
            "c.opf",
            f'<package xmlns="http://www.idpf.org/2007/opf"><manifest>{items}</manifest>'
            f"<spine>{spine}</spine></package>",
        )
        for i in range(20):
            body = "".join(f"<p>{SENTENCE * 4}</p>" for _ in range(10))
            book.writestr(
                f"c{i}.xhtml",
                f"<html><head><title>Chapter {i}</title></head><body>{body}</body></html>",
            )
    return out.getvalue()


def eml() -> bytes:
    message = EmailMessage()
    message["Subject"] = "Inspection"
    message["From"] = "a@example.org"
    message["To"] = "b@example.org"
    message.set_content(SENTENCE * 20)
    message.add_attachment(
        (SENTENCE * 50).encode(), maintype="text", subtype="plain", filename="report.txt"
    )
    return bytes(message)


def rtf() -> bytes:
    body = "\\par ".join(SENTENCE * 4 for _ in range(30))
    return ("{\\rtf1\\ansi{\\fonttbl\\f0 Helvetica;}\\f0 " + body + "}").encode()


def _pdf(story: list[object]) -> bytes:
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A4).build(story)
    return out.getvalue()


def pdf_table(pages: int) -> bytes:
    """A ruled table of about 38 rows a page, its header repeated on every page."""
    header = ["Item", "Site", "Count", "Date", "Batch", "Remark"]
    rows = [header] + [[cell[:24] for cell in _row(i)] for i in range(pages * 38 - 1)]
    table = PdfTable(rows, repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
    return _pdf([table])


def pdf_prose(pages: int) -> bytes:
    style = getSampleStyleSheet()["Normal"]
    return _pdf([Paragraph(SENTENCE * 10, style) for _ in range(pages * 6)])


def _without_tables(data: bytes, name: str, repeat: int) -> dict[str, object]:
    """The same PDF read by pypdf alone: pdf.py's call of table detection finds none."""
    original = pdf.table_pages
    pdf.table_pages = lambda *args, **kwargs: {}
    try:
        result = _time(data, name, repeat)
    finally:
        pdf.table_pages = original
    return {**result, "format": f"{name} (no table detection)"}


def _time(data: bytes, name: str, repeat: int) -> dict[str, object]:
    seconds: list[float] = []
    chunks = 0
    for _ in range(repeat):
        started = time.perf_counter()
        chunks = len(chunk_document(extract(data, filename=name)))
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "format": name,
        "bytes": len(data),
        "chunks": chunks,
        "seconds": round(median, 4),
        "documents_per_s": round(1 / median, 2),
    }


def _table_chunks(data: bytes) -> dict[str, float]:
    extracted = extract(data, filename="a.xlsx")
    rows = [b for b in extracted.blocks if b.table_row]
    starts = [b.start for b in rows]
    sizes: list[int] = []
    tokens: list[int] = []
    for chunk in chunk_document(extracted):
        inside = sum(1 for s in starts if chunk.start <= s < chunk.end)
        if inside:
            sizes.append(inside)
            tokens.append(chunk.token_count)
    return {
        "rows_per_chunk": round(statistics.mean(sizes), 1),
        "tokens_per_chunk": round(statistics.mean(tokens), 1),
        "table_chunks": len(sizes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--slides", type=int, default=30)
    parser.add_argument("--pdf-pages", type=int, default=20)
    args = parser.parse_args()
    builders: dict[str, Callable[[], bytes]] = {
        "sheet.xlsx": lambda: xlsx(args.rows),
        "sheet.csv": lambda: csv_file(args.rows),
        "sheet.ods": lambda: ods(args.rows),
        "deck.pptx": lambda: pptx_file(args.slides),
        "report.odt": odt,
        "book.epub": epub,
        "mail.eml": eml,
        "letter.rtf": rtf,
    }
    for name, build in builders.items():
        print(json.dumps(_time(build(), name, args.repeat)), flush=True)
    for name, data in (
        ("table.pdf", pdf_table(args.pdf_pages)),
        ("prose.pdf", pdf_prose(args.pdf_pages)),
    ):
        print(json.dumps(_time(data, name, args.repeat)), flush=True)
        print(json.dumps(_without_tables(data, name, args.repeat)), flush=True)
    print(json.dumps({"table": _table_chunks(xlsx(args.rows))}))


if __name__ == "__main__":
    main()

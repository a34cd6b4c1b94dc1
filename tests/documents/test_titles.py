"""Titles of documents whose format has no title field: Markdown headings as plain text,
the first short line of a text file, the largest-font line of a PDF's first page."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from documents.extraction import extract
from documents.extraction.titles import first_line_title, markdown_plain

BADGES = (
    "# ragsite [![CI](https://ci.example/badge.svg)](https://ci.example/run) "
    "[![PyPI version](https://img.example/pypi.svg)](https://pypi.example/p) "
    "**fast** `retrieval`\n\nBody text.\n"
)


def test_markdown_title_is_the_heading_plain_text() -> None:
    result = extract(BADGES.encode(), filename="README.md")
    assert result.title == "ragsite fast retrieval"


def test_markdown_plain_keeps_link_text_and_drops_images() -> None:
    assert markdown_plain("See [the guide](http://x/y) <b>now</b>") == "See the guide now"
    assert markdown_plain("[![badge](a.svg)](b)") == ""
    assert markdown_plain("*a* _b_ ~~c~~") == "a b c"


def test_markdown_title_of_only_badges_falls_back_to_the_file_name() -> None:
    result = extract(b"# [![x](y.svg)](z)\n\nText here.\n", filename="notes.md")
    assert result.title is None  # the document then shows its file name


def test_text_title_is_the_first_short_line_with_letters() -> None:
    text = b"=========\n  Release Notes 2.1  \n=========\n\nWhat changed in this release.\n"
    assert extract(text, filename="notes.txt").title == "Release Notes 2.1"


def test_text_without_a_title_line_has_none() -> None:
    long_line = ("word " * 40).strip()
    assert first_line_title(long_line + "\nShort line") is None  # prose, not a title
    assert first_line_title("12345\n----\n") is None
    assert extract((long_line + "\n").encode(), filename="a.txt").title is None


def _pdf(lines: list[tuple[str, int]], *, title: str | None = None) -> bytes:
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    if title is not None:
        pdf.setTitle(title)
    y = 780
    for text, size in lines:
        pdf.setFont("Helvetica", size)
        pdf.drawString(72, y, text)
        y -= size + 10
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def test_pdf_without_metadata_takes_the_largest_font_line() -> None:
    data = _pdf(
        [
            ("Page header", 9),
            ("Annual Water Survey", 22),
            ("Body text here.", 11),
            ("More body text.", 11),
        ]
    )
    assert extract(data, filename="report.pdf").title == "Annual Water Survey"


def test_pdf_metadata_title_wins_and_one_font_size_gives_none() -> None:
    data = _pdf([("Big Heading", 22), ("Body.", 11)], title="From Metadata")
    assert extract(data, filename="r.pdf").title == "From Metadata"
    assert extract(_pdf([("Alpha", 11), ("Beta", 11)]), filename="r.pdf").title is None

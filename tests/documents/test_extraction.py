"""Text extraction on real files built in the tests (reportlab PDFs, python-docx DOCX).

No database and no Django: these run with ``-p no:django``.
"""

from __future__ import annotations

import functools
import io
import random
import re
import resource
import struct
import time
import zipfile
import zlib
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from documents.extraction import (
    SUPPORTED_MIME_TYPES,
    Block,
    ExtractedText,
    ExtractionError,
    detect_mime_type,
    extract,
)
from documents.extraction.docx import MAX_DOCX_UNCOMPRESSED_BYTES

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
NO_TEXT = "no text layer; OCR is off"  # extract() without OCR options, as here
ENCRYPTED = "encrypted PDF: cannot read a password-protected file"
ZIP_BOMB = "DOCX expands past the size limit (possible zip bomb)"


def assert_well_formed(result: ExtractedText) -> None:
    """The contract of ExtractedText: blocks index the text exactly, in order, separated
    by blank lines, each stripped and non-empty, and nothing PostgreSQL would reject."""
    assert isinstance(result, ExtractedText)
    assert result.mime_type in SUPPORTED_MIME_TYPES
    assert result.blocks, "a successful extraction has at least one block"
    assert "\x00" not in result.text
    result.text.encode("utf-8")  # no lone surrogates
    position = 0
    pieces: list[str] = []
    for block in result.blocks:
        assert isinstance(block, Block)
        assert block.start >= position and block.end > block.start
        piece = result.text[block.start : block.end]
        assert piece == piece.strip() and piece
        if pieces:
            assert result.text[position : block.start] == "\n\n"
        pieces.append(piece)
        position = block.end
        if block.is_heading:
            assert "\n" not in piece
            assert block.heading_path and block.heading_path[-1] == piece
    assert position == len(result.text)
    assert "\n\n".join(pieces) == result.text


def block_texts(result: ExtractedText) -> list[str]:
    return [result.text[b.start : b.end] for b in result.blocks]


def block_with(result: ExtractedText, needle: str) -> Block:
    for block in result.blocks:
        if needle in result.text[block.start : block.end]:
            return block
    raise AssertionError(f"no block contains {needle!r}: {block_texts(result)}")


# --- file builders ----------------------------------------------------------------------


def make_pdf(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """A PDF with a real text layer: one list of lines per page."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    if title is not None:
        pdf.setTitle(title)
    for lines in pages:
        y = 780
        for line in lines:
            if line:
                pdf.drawString(72, y, line)
            y -= 40 if not line else 16
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_scanned_pdf() -> bytes:
    """Pages with graphics only, like a scan: a filled rectangle and a raster image."""
    from PIL import Image
    from reportlab.lib.utils import ImageReader

    image = Image.new("RGB", (64, 32), (200, 30, 30))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    for _ in range(2):
        pdf.rect(72, 500, 300, 200, fill=1)
        pdf.drawImage(ImageReader(image), 72, 300, width=128, height=64)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def encrypt_pdf(data: bytes, *, user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password, owner_password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Stale metadata title"
    document.add_heading("User Guide", 0)  # the "Title" style
    document.add_paragraph("An introduction to the product.")
    document.add_heading("Installation", 1)
    document.add_paragraph("Download the package first.")
    document.add_heading("On Linux", 2)
    document.add_paragraph("Use the package manager.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Distribution"
    table.cell(0, 1).text = "Command"
    table.cell(1, 0).text = "Debian"
    table.cell(1, 1).text = "apt install product"
    document.add_heading("Usage", 1)
    document.add_paragraph("Run it.\tThen   relax.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def raw_zip(entries: list[tuple[str, int, bytes, int, int]], *, aliases: int = 0) -> bytes:
    """A ZIP written by hand, so tests can store pre-compressed (and lying) members.

    entries: (name, method, payload, crc32, declared uncompressed size). ``aliases`` adds
    that many extra central-directory entries pointing at the last member's data, the
    overlapping-files trick that lets a tiny ZIP declare gigabytes.
    """
    out = io.BytesIO()
    central = []
    offset = 0
    for name, method, payload, crc, size in entries:
        offset = out.tell()
        encoded = name.encode()
        out.write(
            struct.pack(
                "<4s5H3I2H",
                b"PK\x03\x04",
                20,
                0,
                method,
                0,
                0x21,
                crc,
                len(payload),
                size,
                len(encoded),
                0,
            )
        )
        out.write(encoded + payload)
        central.append((encoded, method, payload, crc, size, offset))
    last = central[-1]
    central += [(f"word/media/copy{i}.bin".encode(), *last[1:]) for i in range(aliases)]
    directory = b"".join(
        struct.pack(
            "<4s6H3I5H2I",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(payload),
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + encoded
        for encoded, method, payload, crc, size, offset in central
    )
    start = out.tell()
    out.write(directory)
    out.write(
        struct.pack(
            "<4s4H2IH", b"PK\x05\x06", 0, 0, len(central), len(central), len(directory), start, 0
        )
    )
    return out.getvalue()


def deflated_zeros(megabytes: int) -> tuple[bytes, int]:
    """Raw deflate of ``megabytes`` MiB of zeros and its CRC, without ever holding more
    than 1 MiB of plain data: after a full flush the compressor forgets its history, so
    every further MiB compresses to the same bytes and can simply be repeated."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(chunk, crc)
    return block * megabytes + compressor.flush(), crc


_SMALL_PARTS = [
    ("[Content_Types].xml", 0, b"<Types/>", zlib.crc32(b"<Types/>"), 8),
    ("_rels/.rels", 0, b"<Relationships/>", zlib.crc32(b"<Relationships/>"), 16),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# --- detection --------------------------------------------------------------------------


def test_supported_types() -> None:
    assert set(SUPPORTED_MIME_TYPES) >= {
        "text/plain",
        "text/markdown",
        "text/html",
        PDF,
        DOCX,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "text/csv",
        "message/rfc822",
        "application/epub+zip",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/rtf",
    }


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"%PDF-1.7\n...", "report.txt", PDF),
        (b"<!DOCTYPE html><title>x</title>", "notes.md", "text/html"),
        (b"\n  <HTML lang=en><body>hi</body></HTML>", "page.txt", "text/html"),
        (b"<p>fragment</p>", "page.html", "text/html"),
        (b"<p>fragment</p>", "page.txt", "text/plain"),
        (b"# Title\n\nBody", "notes", "text/markdown"),
        (b"# Title\n\nBody", "notes.txt", "text/plain"),
        (b"plain words", "README.MD", "text/markdown"),
        (b"key = 1\n# a comment\nother = 2\n", "settings.cfg", "text/plain"),
        (b"Some text that mentions <html> later", "a.md", "text/markdown"),
    ],
)
def test_detect_by_content_first(data: bytes, filename: str, expected: str) -> None:
    assert detect_mime_type(data, filename) == expected


def test_detect_docx_by_its_main_part() -> None:
    assert detect_mime_type(make_docx(), "upload.bin") == DOCX


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
        (b"\xff\xd8\xff\xe0" + bytes(64), "JPEG image"),
        (b"GIF89a" + bytes(64), "GIF image"),
        (b"\x7fELF\x02\x01\x01" + bytes(64), "ELF executable"),
        (b"\x1f\x8b\x08\x00" + bytes(64), "gzip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "legacy Microsoft Office"),
    ],
)
def test_binary_formats_named_in_the_error(data: bytes, kind: str) -> None:
    with pytest.raises(ExtractionError, match=r"^unsupported file type: ") as error:
        extract(data, filename="notes.txt")
    assert kind in str(error.value)


def test_zip_that_is_not_docx() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(ExtractionError, match=r"^unsupported file type: ZIP archive"):
        extract(out.getvalue(), filename="data.docx")


def test_random_bytes_named_txt_fail_clearly() -> None:
    data = random.Random(1234).randbytes(4096)
    with pytest.raises(ExtractionError, match=r"^unsupported file type: binary data"):
        extract(data, filename="notes.txt")


def test_empty_file() -> None:
    with pytest.raises(ExtractionError, match=r"^empty file$"):
        extract(b"", filename="empty.txt")
    with pytest.raises(ExtractionError, match=r"^empty file$"):
        extract(b" \n\t\r\n ", filename="blank.md")


def test_nothing_left_after_cleaning() -> None:
    with pytest.raises(ExtractionError, match=r"^no extractable text$"):
        extract(
            b"<html><body><script>var x = 1;</script><nav>Home</nav></body></html>",
            filename="page.html",
        )


# --- plain text and Markdown ------------------------------------------------------------


def test_plain_text_paragraphs_and_whitespace() -> None:
    data = b"First  paragraph\twith   spaces   \r\nsecond line\r\n\r\n\r\n\r\n\r\n"
    data += b"Next one\n \n\nLast\n"
    result = extract(data, filename="notes.txt")
    assert_well_formed(result)
    assert result.mime_type == "text/plain"
    assert block_texts(result) == ["First paragraph with spaces\nsecond line", "Next one", "Last"]
    assert result.text == "First paragraph with spaces\nsecond line\n\nNext one\n\nLast"
    assert all(b.heading_path == () and not b.is_heading for b in result.blocks)


def test_latin1_with_nul_bytes_is_decoded() -> None:
    data = "Le café est très bon.\x00 Ça va?\n\nÀ bientôt, garçon!\x00\n".encode("latin-1")
    result = extract(data, filename="notes.txt")
    assert_well_formed(result)
    assert "\x00" not in result.text
    assert block_texts(result) == ["Le café est très bon. Ça va?", "À bientôt, garçon!"]


def test_utf8_bom_utf16_and_nfc() -> None:
    decomposed = "Cafe\u0301 au lait"  # "e" + combining acute accent
    result = extract(b"\xef\xbb\xbf" + decomposed.encode("utf-8"), filename="a.txt")
    assert result.text == "Caf\u00e9 au lait"
    result = extract("Grüße aus Köln\n\nzweiter Absatz".encode("utf-16"), filename="a.txt")
    assert block_texts(result) == ["Grüße aus Köln", "zweiter Absatz"]
    result = extract("Grüße aus Köln".encode("utf-16-le"), filename="a.txt")  # no BOM
    assert result.text == "Grüße aus Köln"


def test_control_characters_removed() -> None:
    result = extract(b"bell\x07 and\x1b escape\x0bvertical tab", filename="a.txt")
    assert_well_formed(result)
    assert result.text == "bell and escape\nvertical tab"


def test_markdown_headings_and_paths() -> None:
    data = (
        b"# Handbook\n\nWelcome.\n\n## Setup ##\n\nInstall it.\n\n### Linux\n\nUse apt.\n\n"
        b"```sh\n# not a heading\n\n\n\nmake\n```\n\n## Usage\n\n- run it\n- *enjoy*\n\n"
        b"#hashtag is text\n"
    )
    result = extract(data, filename="handbook.md")
    assert_well_formed(result)
    assert result.mime_type == "text/markdown"
    assert result.title == "Handbook"
    headings = [
        (result.text[b.start : b.end], b.heading_path) for b in result.blocks if b.is_heading
    ]
    assert headings == [
        ("Handbook", ("Handbook",)),
        ("Setup", ("Handbook", "Setup")),
        ("Linux", ("Handbook", "Setup", "Linux")),
        ("Usage", ("Handbook", "Usage")),
    ]
    assert "#" not in result.text.split("```")[0]  # markers stripped from headings
    assert block_with(result, "Use apt.").heading_path == ("Handbook", "Setup", "Linux")
    code = block_with(result, "# not a heading")
    assert not code.is_heading and code.heading_path == ("Handbook", "Setup", "Linux")
    assert block_with(result, "- run it").heading_path == ("Handbook", "Usage")
    assert "- *enjoy*" in result.text  # the rest of the Markdown is kept as written
    assert block_with(result, "#hashtag").heading_path == ("Handbook", "Usage")


def test_markdown_detected_from_content_without_extension() -> None:
    result = extract(b"# Notes\n\nSome text.\n", filename="NOTES")
    assert result.mime_type == "text/markdown"
    assert result.title == "Notes"


# --- HTML -------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html><head>
  <meta charset="windows-1252">
  <title>Caf\xe9 Guide</title>
  <style>body { color: red; }</style>
  <script>alert(1)</script>
</head><body>
  <header><a href="/">Site logo</a></header>
  <nav><ul><li>Home</li><li>About</li></ul></nav>
  <main>
    <article>
      <header><h1>Brewing   coffee</h1></header>
      <p>Good <b>cof</b>fee needs<br>fresh beans &amp; water&nbsp;at 94&deg;C.</p>
      <noscript>Enable JavaScript</noscript>
      <h2>Equipment</h2>
      <ul><li>Grinder</li><li>Kettle</li></ul>
      <table><tr><th>Method</th><td>Time</td></tr><tr><td>Pour-over</td><td>3 min</td></tr></table>
      <h3>Grinders</h3>
      <div>Burr grinders are best.<div>Nested div text.</div></div>
      <pre>line 1
    line 2</pre>
      <blockquote>Quote here</blockquote>
      <h2>Serving</h2>
      <p hidden>hidden text</p>
      <form><label>Subscribe</label><input name=email></form>
      <p>Enjoy.<script>document.write("injected")</script></p>
      <svg><title>icon title</title><text>svg text</text></svg>
    </article>
  </main>
  <aside>Related links</aside>
  <footer>Copyright footer</footer>
  <iframe src="x">iframe text</iframe>
  <template><p>template text</p></template>
</body></html>
"""


def test_html_drops_chrome_and_keeps_structure() -> None:
    result = extract(HTML_PAGE.encode("cp1252"), filename="guide.md")  # content wins
    assert_well_formed(result)
    assert result.mime_type == "text/html"
    assert result.title == "Café Guide"
    for dropped in (
        "alert(1)",
        "color: red",
        "Site logo",
        "Home",
        "About",
        "Enable JavaScript",
        "hidden text",
        "Subscribe",
        "injected",
        "icon title",
        "svg text",
        "Related links",
        "Copyright footer",
        "iframe text",
        "template text",
    ):
        assert dropped not in result.text, dropped
    assert block_with(result, "Brewing coffee").is_heading
    assert block_with(result, "Good coffee needs").heading_path == ("Brewing coffee",)
    assert "Good coffee needs\nfresh beans & water at 94°C." in block_texts(result)
    assert block_with(result, "Grinder").heading_path == ("Brewing coffee", "Equipment")
    assert {"Grinder", "Kettle", "Method | Time", "Pour-over | 3 min"} <= set(block_texts(result))
    assert block_with(result, "Pour-over").table_row  # a data table stays a table
    grinders = ("Brewing coffee", "Equipment", "Grinders")
    assert block_with(result, "Burr grinders").heading_path == grinders
    assert "Nested div text." in block_texts(result)
    assert block_with(result, "line 1").heading_path == grinders
    assert block_with(result, "Quote here").heading_path == grinders
    assert block_with(result, "Enjoy.").heading_path == ("Brewing coffee", "Serving")


def test_html_title_falls_back_to_first_h1_and_utf8_declared_wrongly() -> None:
    page = '<html><head><meta charset="iso-8859-1"></head><body><h1>Ünïcode</h1><p>ok</p>'
    result = extract(page.encode("utf-8"), filename="page.html")
    assert result.title == "Ünïcode"
    assert block_texts(result) == ["Ünïcode", "ok"]


def test_deeply_nested_html() -> None:
    page = "<html><body>" + "<div>" * 5000 + "deep text" + "</div>" * 5000 + "</body></html>"
    result = extract(page.encode(), filename="deep.html")
    assert_well_formed(result)
    assert "deep text" in result.text


# --- PDF --------------------------------------------------------------------------------


def test_pdf_pages_and_title() -> None:
    data = make_pdf(
        [
            ["Alpha page one line one", "alpha line two"],
            ["Bravo on page two", "", "Second paragraph? (same block: pypdf joins lines)"],
            [],
            ["Charlie on page four"],
        ],
        title="Quarterly Report",
    )
    result = extract(data, filename="report.pdf")
    assert_well_formed(result)
    assert result.mime_type == PDF
    assert result.page_count == 4
    assert result.title == "Quarterly Report"
    assert block_with(result, "Alpha page one").page == 1
    assert block_with(result, "Bravo").page == 2
    assert block_with(result, "Charlie").page == 4
    assert [b.page for b in result.blocks] == sorted(b.page or 0 for b in result.blocks)
    assert all(b.heading_path == () for b in result.blocks)


def test_pdf_named_txt_is_read_as_pdf() -> None:
    result = extract(make_pdf([["Hello from a PDF"]]), filename="notes.txt")
    assert result.mime_type == PDF
    assert result.text == "Hello from a PDF"
    assert result.title is None  # reportlab's placeholder "untitled" is not a title


def test_pdf_without_text_layer() -> None:
    with pytest.raises(ExtractionError) as error:
        extract(make_scanned_pdf(), filename="scan.pdf")
    assert str(error.value) == NO_TEXT


def test_encrypted_pdf() -> None:
    data = encrypt_pdf(make_pdf([["top secret"]]), user_password="s3cret")
    with pytest.raises(ExtractionError) as error:
        extract(data, filename="secret.pdf")
    assert str(error.value) == ENCRYPTED


def test_pdf_encrypted_with_owner_password_only_is_read() -> None:
    data = encrypt_pdf(
        make_pdf([["restricted but readable"]]), user_password="", owner_password="owner"
    )
    assert extract(data, filename="restricted.pdf").text == "restricted but readable"


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + random.Random(7).randbytes(2000),
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>",
        make_pdf([["truncated document"]])[:400],
        b"%PDF-",
    ],
    ids=["garbage", "no-xref", "truncated", "header-only"],
)
def test_corrupt_pdf(data: bytes) -> None:
    with pytest.raises(ExtractionError, match=r"^corrupt PDF: .+"):
        extract(data, filename="broken.pdf")


# --- DOCX -------------------------------------------------------------------------------


def test_docx_headings_tables_and_paths() -> None:
    result = extract(make_docx(), filename="guide.docx")
    assert_well_formed(result)
    assert result.mime_type == DOCX
    assert result.title == "User Guide"  # the Title paragraph beats stale metadata
    assert block_texts(result) == [
        "User Guide",
        "An introduction to the product.",
        "Installation",
        "Download the package first.",
        "On Linux",
        "Use the package manager.",
        "Distribution | Command",
        "Debian | apt install product",
        "Usage",
        "Run it. Then relax.",
    ]
    headings = {result.text[b.start : b.end]: b.heading_path for b in result.blocks if b.is_heading}
    assert headings == {
        "User Guide": ("User Guide",),
        "Installation": ("User Guide", "Installation"),
        "On Linux": ("User Guide", "Installation", "On Linux"),
        "Usage": ("User Guide", "Usage"),
    }
    assert block_with(result, "apt install").heading_path == (
        "User Guide",
        "Installation",
        "On Linux",
        "Distribution | Command",  # the table's header row, carried by every row
    )
    assert not block_with(result, "apt install").is_heading
    assert block_with(result, "Run it.").heading_path == ("User Guide", "Usage")
    assert all(b.page is None for b in result.blocks)


def test_corrupt_docx() -> None:
    data = make_docx()
    with pytest.raises(ExtractionError, match=r"^corrupt DOCX: "):
        extract(data[: len(data) // 2], filename="broken.docx")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document><unclosed>")
    with pytest.raises(ExtractionError, match=r"^corrupt DOCX: "):
        extract(out.getvalue(), filename="broken.docx")


def _assert_fails_fast(data: bytes, pattern: str) -> None:
    before = peak_rss_mb()
    started = time.monotonic()
    with pytest.raises(ExtractionError, match=pattern):
        extract(data, filename="bomb.docx")
    assert time.monotonic() - started < 2.0
    assert peak_rss_mb() - before < 300


def test_docx_zip_bomb(tmp_path: Path) -> None:
    megabytes = 1025  # document.xml expands past 1 GiB
    payload, crc = deflated_zeros(megabytes)
    data = raw_zip([*_SMALL_PARTS, ("word/document.xml", 8, payload, crc, megabytes << 20)])
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(data)
    assert bomb.stat().st_size < 1.5 * 1024 * 1024  # deflate's ratio tops out near 1000:1
    _assert_fails_fast(bomb.read_bytes(), rf"^{re.escape(ZIP_BOMB)}$")


def test_docx_overlapping_entries_bomb() -> None:
    # ~100 KB that declares 1.2 GB: twelve directory entries share one 100 MiB member.
    payload, crc = deflated_zeros(100)
    data = raw_zip([*_SMALL_PARTS, ("word/document.xml", 8, payload, crc, 100 << 20)], aliases=11)
    assert len(data) < 150 * 1024
    _assert_fails_fast(data, "possible zip bomb")


def test_docx_member_lying_about_its_size() -> None:
    # Declares 10 KiB but inflates to 300 MiB: the reader must not trust the header.
    payload, crc = deflated_zeros(300)
    data = raw_zip([*_SMALL_PARTS, ("word/document.xml", 8, payload, crc, 10 * 1024)])
    assert 300 << 20 > MAX_DOCX_UNCOMPRESSED_BYTES
    _assert_fails_fast(data, r"^(corrupt DOCX: |DOCX expands past the size limit)")


def test_macro_enabled_word_file_is_refused_clearly() -> None:
    source = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.wordprocessingml."
                    b"document.main+xml",
                    b"application/vnd.ms-word.document.macroEnabled.main+xml",
                )
            archive.writestr(info, data)
    with pytest.raises(ExtractionError, match=r"^unsupported file type: Word macro-enabled"):
        extract(out.getvalue(), filename="macros.docm")


# --- robustness -------------------------------------------------------------------------

FILENAMES = st.sampled_from(["a.txt", "a.md", "a.html", "a.pdf", "a.docx", "noext", ""])
PREFIXES = st.sampled_from(
    [
        b"",
        b"%PDF-1.4\n",
        b"PK\x03\x04",
        b"<html><body>",
        b"# Title\n",
        b"\xef\xbb\xbf",
        b"\xff\xfe",
        b"\xfe\xff",
        b"\x89PNG\r\n\x1a\n",
        b"{\\rtf1",
    ]
)


def _extract_or_error(data: bytes, filename: str) -> None:
    try:
        result = extract(data, filename=filename)
    except ExtractionError as error:
        assert str(error)
    else:
        assert_well_formed(result)


@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    prefix=PREFIXES,
    body=st.binary(max_size=1500) | st.text(max_size=500).map(str.encode),
    filename=FILENAMES,
)
def test_random_bytes_never_raise_anything_else(prefix: bytes, body: bytes, filename: str) -> None:
    _extract_or_error(prefix + body, filename)


@functools.cache
def _real_files() -> tuple[bytes, ...]:
    return (
        make_pdf([["Page one text"], ["Page two text"]], title="Mutated"),
        make_docx(),
        HTML_PAGE.encode("cp1252"),
    )


@settings(max_examples=100, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, 2),
    cut=st.integers(0, 100_000),
    flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=8),
    filename=FILENAMES,
)
def test_damaged_real_files_never_raise_anything_else(
    which: int, cut: int, flips: list[tuple[int, int]], filename: str
) -> None:
    data = bytearray(_real_files()[which])
    for position, value in flips:
        data[position % len(data)] = value
    _extract_or_error(bytes(data[: max(cut % (len(data) + 1), 1)]), filename)

"""The formats of issue 18, from real files made here with the real libraries, plus
damaged and hostile versions of each (truncated, zip bomb, XML entities, wrong name)."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from typing import Any

import openpyxl
import pptx
import pytest
from pptx.util import Inches

from documents.extraction import ExtractionError, detect, extract

# --- builders -------------------------------------------------------------------------------


def make_pptx() -> bytes:
    deck = pptx.Presentation()
    deck.core_properties.title = "Quarterly review"
    deck.core_properties.author = "Ada Lovelace"
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Revenue grew"
    first.placeholders[1].text_frame.text = "Sales of turbines doubled in the north."
    first.notes_slide.notes_text_frame.text = "Mention the wind farm contract."
    second = deck.slides.add_slide(deck.slide_layouts[5])
    second.shapes.title.text = "Regions"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate([["Region", "Units"], ["North", "4200"], ["South", "1800"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def make_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Part", "Price"])
    sheet.append(["Gearbox", 1200])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_eml(attachment: bytes | None = None) -> bytes:
    message = EmailMessage()
    message["Subject"] = "Turbine maintenance schedule"
    message["From"] = "Grace Hopper <grace@example.org>"
    message["To"] = "ops@example.org"
    message["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    message.set_content("The gearbox inspection moves to Friday.\n\nBring the torque wrench.")
    if attachment is not None:
        message.add_attachment(
            attachment, maintype="text", subtype="plain", filename="checklist.txt"
        )
    return bytes(message)


def _rezip(data: bytes, replace: dict[str, bytes]) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, replace.get(info.filename, source.read(info)))
    return out.getvalue()


# --- the formats ------------------------------------------------------------------------------


def test_pptx_slides_are_pages_titles_are_headings_notes_and_tables_kept() -> None:
    result = extract(make_pptx(), filename="deck.bin")  # detected by content, not name
    assert result.mime_type == detect.PPTX
    assert result.title == "Quarterly review" and result.page_count == 2
    assert result.metadata["author"] == "Ada Lovelace"
    blocks = {result.text[b.start : b.end]: b for b in result.blocks}
    assert blocks["Revenue grew"].is_heading and blocks["Revenue grew"].page == 1
    assert "Notes: Mention the wind farm contract." in blocks
    assert blocks["Sales of turbines doubled in the north."].heading_path == ("Revenue grew",)
    row = blocks["North | 4200"]
    assert row.table_row and row.page == 2
    assert row.heading_path == ("Regions", "Region | Units")


def test_xlsx_sheet_is_a_section_of_rows() -> None:
    result = extract(make_xlsx(), filename="parts.xlsx")
    assert result.text == "Sheet\n\nPart | Price\n\nGearbox | 1200"
    assert [b.table_row for b in result.blocks] == [False, True, True]


def test_eml_subject_is_title_headers_are_metadata_body_is_text() -> None:
    result = extract(make_eml(), filename="mail.eml")
    assert result.mime_type == detect.EML
    assert result.title == "Turbine maintenance schedule"
    assert result.metadata["from"] == "Grace Hopper <grace@example.org>"
    assert result.metadata["to"] == "ops@example.org"
    assert "2026" in result.metadata["date"]
    assert "Bring the torque wrench." in result.text
    assert result.text.startswith("From: Grace Hopper")


def test_eml_attachments_are_handed_back() -> None:
    result = extract(make_eml(b"1. check oil\n2. check bolts\n"), filename="mail.eml")
    (attachment,) = result.attachments
    assert attachment.filename == "checklist.txt"
    assert attachment.data == b"1. check oil\n2. check bolts\n"


def test_eml_is_detected_by_content_whatever_the_name() -> None:
    assert detect.detect_mime_type(make_eml(), "saved.txt") == detect.EML
    note = b"From: the desk of a poet\n\nRoses are red."
    assert detect.detect_mime_type(note, "note.txt") == detect.PLAIN


def test_csv_needs_its_extension_but_any_delimiter_works() -> None:
    assert extract(b"a\tb\n1\t2\n", filename="x.tsv").text == "a | b\n\n1 | 2"
    assert extract(b"a,b\n1,2\n", filename="x.txt").mime_type == detect.PLAIN


# --- damaged and hostile ---------------------------------------------------------------------

BUILDERS = {"deck.pptx": make_pptx, "book.xlsx": make_xlsx}


@pytest.mark.parametrize("name", BUILDERS)
def test_truncated_files_fail_clearly(name: str) -> None:
    data = BUILDERS[name]()
    with pytest.raises(ExtractionError, match=r"corrupt|damaged"):
        extract(data[: len(data) // 2], filename=name)


@pytest.mark.parametrize("name", BUILDERS)
def test_a_zip_bomb_is_refused_before_parsing(name: str) -> None:
    data = BUILDERS[name]()
    main = "ppt/presentation.xml" if name.endswith("pptx") else "xl/workbook.xml"
    original = zipfile.ZipFile(io.BytesIO(data)).read(main)
    # Valid XML followed by 300 MB of spaces: compresses to a few hundred kB.
    bomb = _rezip(data, {main: original + b" " * (300 << 20)})
    assert len(bomb) < 2 << 20
    with pytest.raises(ExtractionError, match="possible zip bomb"):
        extract(bomb, filename=name)


@pytest.mark.parametrize("name", BUILDERS)
def test_xml_entity_expansion_is_refused(name: str) -> None:
    data = BUILDERS[name]()
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;">]><x>&b;</x>'
    )
    hostile = _rezip(data, {"docProps/core.xml": laughs})
    with pytest.raises(ExtractionError, match="declares XML entities"):
        extract(hostile, filename=name)


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (make_pptx, "slides.docx", detect.PPTX),
        (make_xlsx, "table.pdf", detect.XLSX),
        (make_eml, "mail.html", detect.EML),
    ],
)
def test_wrong_extension_is_detected_by_content(data: Any, name: str, expected: str) -> None:
    assert extract(data(), filename=name).mime_type == expected


def test_too_many_rows_fail_with_the_reason(settings: Any) -> None:
    settings.EXTRACTION_MAX_ROWS = 10
    rows = "".join(f"{i},x\n" for i in range(20)).encode()
    with pytest.raises(ExtractionError, match="too many table rows"):
        extract(rows, filename="big.csv")


# --- e-mail attachments as documents ------------------------------------------------------


def test_attachments_become_documents_that_go_with_their_message(db: None, ingest: Any) -> None:
    from documents.models import Document
    from documents.pipeline import documents_process
    from documents.services import document_delete
    from tests.factories import CollectionFactory

    collection = CollectionFactory.create()
    message = make_eml(b"1. check oil\n2. check bolts\n")
    (document,) = ingest(collection, {"mail.eml": message})
    assert document.status == "ready", document.error
    assert document.metadata["from"] == "Grace Hopper <grace@example.org>"
    (child,) = Document.objects.filter(parent=document)
    assert child.source_name == "checklist.txt" and child.metadata["attachment_of"] == document.pk
    documents_process(document_ids=[child.pk])
    child.refresh_from_db()
    assert child.status == "ready" and "check bolts" in child.extracted_text

    document_delete(document=document)
    assert not Document.objects.filter(pk__in=[document.pk, child.pk]).exists()


def test_nested_messages_are_not_expanded(db: None, ingest: Any) -> None:
    from documents.models import Document
    from tests.factories import CollectionFactory

    outer = EmailMessage()
    outer["Subject"] = "fwd"
    outer["From"] = "a@example.org"
    outer["To"] = "b@example.org"
    outer.set_content("forwarded below")
    outer.add_attachment(
        make_eml(), maintype="application", subtype="octet-stream", filename="fwd.eml"
    )
    (document,) = ingest(CollectionFactory.create(), {"outer.eml": bytes(outer)})
    assert document.status == "ready", document.error
    assert not Document.objects.filter(parent=document).exists()
    assert "nested messages" in document.metadata["skipped_attachments"][0]


# --- OpenDocument, EPUB, RTF --------------------------------------------------------------


def _odf_bytes(document: Any) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _odf_table(rows: list[list[str]], name: str = "Table1") -> Any:
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    table = Table(name=name)
    for row in rows:
        table_row = TableRow()
        table.addElement(table_row)
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            table_row.addElement(cell)
    return table


def make_odt() -> bytes:
    from odf import dc, meta
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text="Field guide"))
    document.meta.addElement(meta.InitialCreator(text="Mary Anning"))
    document.text.addElement(H(outlinelevel=1, text="Fossils"))
    document.text.addElement(P(text="Ammonites are common on the beach."))
    document.text.addElement(_odf_table([["Site", "Age"], ["Lyme", "Jurassic"]]))
    return _odf_bytes(document)


def make_ods() -> bytes:
    from odf.opendocument import OpenDocumentSpreadsheet

    document = OpenDocumentSpreadsheet()
    document.spreadsheet.addElement(_odf_table([["Part", "Price"], ["Gear", "12"]], "Costs"))
    return _odf_bytes(document)


def make_odp() -> bytes:
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout
    from odf.text import P

    document = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    document.masterstyles.addElement(master)

    def frame(text: str, **attributes: Any) -> Any:
        shape = Frame(width="10cm", height="2cm", x="1cm", y="1cm", **attributes)
        box = TextBox()
        box.addElement(P(text=text))
        shape.addElement(box)
        return shape

    for number in (1, 2):
        page = Page(masterpagename=master)
        document.presentation.addElement(page)
        page.addElement(frame(f"Slide {number}", attributes={"class": "title"}))
        page.addElement(frame(f"Body of slide {number}"))
        notes = Notes()
        notes.addElement(frame(f"Speaker note {number}"))
        page.addElement(notes)
    return _odf_bytes(document)


def make_epub() -> bytes:
    chapter = (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>{title}</title></head><body><p>{body}</p></body></html>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Sea Stories'
            "</dc:title><dc:creator>Herman Melville</dc:creator></metadata><manifest>"
            '<item id="c2" href="text/two.xhtml" media-type="application/xhtml+xml"/>'
            '<item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/>'
            '</manifest><spine><itemref idref="c1"/><itemref idref="c2"/></spine></package>',
        )
        book.writestr(
            "OEBPS/text/one.xhtml", chapter.format(title="Loomings", body="Call me Ishmael.")
        )
        book.writestr(
            "OEBPS/text/two.xhtml",
            chapter.format(title="The Carpet-Bag", body="I stuffed a shirt."),
        )
    return buffer.getvalue()


RTF = (
    rb"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard "
    rb"Invoice for \b pumps\b0 .\par Paid in full.\par}"
)


def test_odt_headings_paragraphs_tables_and_metadata() -> None:
    result = extract(make_odt(), filename="guide.odt")
    assert result.mime_type == detect.ODT and result.title == "Field guide"
    assert result.metadata["author"] == "Mary Anning"
    assert (
        result.text
        == "Fossils\n\nAmmonites are common on the beach.\n\nSite | Age\n\nLyme | Jurassic"
    )
    assert result.blocks[0].is_heading
    assert result.blocks[-1].heading_path == ("Fossils", "Site | Age")


def test_ods_sheets_are_sections_of_rows() -> None:
    result = extract(make_ods(), filename="costs.bin")
    assert result.mime_type == detect.ODS
    assert result.text == "Costs\n\nPart | Price\n\nGear | 12"
    assert result.blocks[-1].table_row


def test_odp_slides_are_pages_with_titles_and_notes() -> None:
    result = extract(make_odp(), filename="talk.odp")
    assert result.mime_type == detect.ODP and result.page_count == 2
    blocks = {result.text[b.start : b.end]: b for b in result.blocks}
    assert blocks["Slide 2"].is_heading and blocks["Slide 2"].page == 2
    assert blocks["Body of slide 2"].heading_path == ("Slide 2",)
    assert "Notes: Speaker note 1" in blocks


def test_epub_chapters_in_spine_order_as_headings() -> None:
    result = extract(make_epub(), filename="book.zip")
    assert result.mime_type == detect.EPUB
    assert result.title == "Sea Stories" and result.metadata["author"] == "Herman Melville"
    assert result.text == "Loomings\n\nCall me Ishmael.\n\nThe Carpet-Bag\n\nI stuffed a shirt."
    assert result.blocks[3].heading_path == ("The Carpet-Bag",)


def test_rtf_text_without_control_words() -> None:
    result = extract(RTF, filename="invoice.doc")
    assert result.mime_type == detect.RTF
    assert "Invoice for pumps" in result.text and "Paid in full." in result.text
    assert "\\par" not in result.text and "Helvetica" not in result.text


OPEN_BUILDERS = {"a.odt": make_odt, "b.ods": make_ods, "c.odp": make_odp, "d.epub": make_epub}


@pytest.mark.parametrize("name", OPEN_BUILDERS)
def test_damaged_and_hostile_open_formats_fail_clearly(name: str) -> None:
    data = OPEN_BUILDERS[name]()
    with pytest.raises(ExtractionError, match=r"corrupt|damaged"):
        extract(data[: len(data) // 2], filename=name)
    main = "content.xml" if name != "d.epub" else "OEBPS/content.opf"
    original = zipfile.ZipFile(io.BytesIO(data)).read(main)
    with pytest.raises(ExtractionError, match="possible zip bomb"):
        extract(_rezip(data, {main: original + b" " * (300 << 20)}), filename=name)
    laughs = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "lol">]><x>&a;</x>'
    with pytest.raises(ExtractionError, match="declares XML entities"):
        extract(_rezip(data, {main: laughs}), filename=name)


# --- GET /api/v1/formats/ -------------------------------------------------------------------


def test_formats_endpoint_lists_every_accepted_type_with_the_limits(
    db: None, client: Any, settings: Any
) -> None:
    settings.EXTRACTION_MAX_ROWS = 1234
    response = client.get("/api/v1/formats/")
    assert response.status_code == 200
    body = response.json()
    types = {entry["mime_type"]: entry for entry in body["formats"]}
    assert set(types) == set(detect.SUPPORTED_MIME_TYPES)
    assert ".xlsx" in types[detect.XLSX]["extensions"]
    assert all(entry["name"] and entry["extensions"] for entry in body["formats"])
    assert body["limits"]["max_table_rows"] == 1234
    assert body["limits"]["max_upload_bytes"] == settings.MAX_UPLOAD_BYTES

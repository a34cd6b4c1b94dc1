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

    collection = CollectionFactory()
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
    (document,) = ingest(CollectionFactory(), {"outer.eml": bytes(outer)})
    assert document.status == "ready", document.error
    assert not Document.objects.filter(parent=document).exists()
    assert "nested messages" in document.metadata["skipped_attachments"][0]

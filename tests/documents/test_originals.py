"""Stored originals: a download by default; with `?inline=1` a PDF or text file is shown in
the browser with its own type, while HTML and everything else stay downloads. Either way
the sandbox CSP and `nosniff` keep the browser from running anything in our origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser
from rest_framework.test import APIClient

from documents.models import Document
from tests.helpers.browser import chromium

TEXT = "Glaciers carve valleys over thousands of years. Moraines mark where they stopped."
HTML = (
    "<html><body><h1>Page</h1><p>Tides follow the moon.</p><script>alert(1)</script></body></html>"
)
SANDBOX = "default-src 'none'; sandbox"


def _pdf(tmp_path: Path) -> bytes:
    from reportlab.pdfgen import canvas

    path = tmp_path / "paper.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.drawString(72, 720, "Chloroplasts capture light.")
    pdf.showPage()
    pdf.save()
    return path.read_bytes()


@pytest.fixture
def documents(ingest: Any, public_collection: Any, tmp_path: Path) -> dict[str, Document]:
    files = {"notes.txt": TEXT, "page.html": HTML, "paper.pdf": _pdf(tmp_path), "r.md": "# R\n\nx"}
    return {doc.source_name: doc for doc in ingest(public_collection, files)}


def _headers(response: Any) -> tuple[str, str]:
    return response["Content-Type"], response["Content-Disposition"]


@pytest.mark.parametrize("base", ["/documents/{pk}/original/", "/api/v1/documents/{pk}/original/"])
def test_pdf_and_text_are_shown_in_place_when_asked(
    documents: dict[str, Document], base: str
) -> None:
    client = Client()
    expected = {
        "paper.pdf": "application/pdf",
        "notes.txt": "text/plain",
        "r.md": "text/plain",  # Markdown is shown as its source, never rendered
    }
    for name, content_type in expected.items():
        response = client.get(base.format(pk=documents[name].pk) + "?inline=1")
        assert response.status_code == 200, name
        assert response["Content-Type"].split(";")[0] == content_type, name
        assert response["Content-Disposition"].startswith("inline"), name
        assert name in response["Content-Disposition"]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == SANDBOX
    # Without asking, the same files are downloads.
    plain = client.get(base.format(pk=documents["paper.pdf"].pk))
    assert _headers(plain) == ("application/octet-stream", 'attachment; filename="paper.pdf"')


def test_html_is_never_shown_in_place(documents: dict[str, Document]) -> None:
    for client, url in [
        (Client(), f"/documents/{documents['page.html'].pk}/original/?inline=1"),
        (APIClient(), f"/api/v1/documents/{documents['page.html'].pk}/original/?inline=1"),
    ]:
        response = client.get(url)
        download = ("application/octet-stream", 'attachment; filename="page.html"')
        assert _headers(response) == download
        assert response["Content-Security-Policy"] == SANDBOX


def test_the_document_page_offers_open_only_for_types_shown_in_place(
    documents: dict[str, Document],
) -> None:
    client = Client()
    pdf_page = client.get(f"/documents/{documents['paper.pdf'].pk}/").content.decode()
    assert f'href="/documents/{documents["paper.pdf"].pk}/original/?inline=1"' in pdf_page
    html_page = client.get(f"/documents/{documents['page.html'].pk}/").content.decode()
    assert 'id="download"' in html_page and "?inline=1" not in html_page


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_open_original_shows_the_text_in_the_browser(
    browser: Browser, live_server: Any, ingest: Any, tmp_path: Path
) -> None:
    from tests.factories import CollectionFactory

    (document,) = ingest(CollectionFactory.create(is_public=True), {"notes.txt": TEXT})
    context = browser.new_context(base_url=live_server.url, accept_downloads=True)
    page = context.new_page()
    page.goto(f"/documents/{document.pk}/")
    with context.expect_page() as opened:
        page.click("#open-original")
    shown = opened.value
    shown.wait_for_load_state()
    assert "Moraines mark where they stopped" in shown.inner_text("body")
    # The plain "Download original" link still downloads.
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "notes.txt"
    context.close()

"""Issue 18, "done when": a scanned PDF uploaded through the admin becomes searchable
without any setting changed, through a REAL worker (``manage.py qcluster``, whose
processes are daemonic: the page renderer must still start its child there)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from documents.models import Document
from search.retrieval import SearchParams, search
from tests.documents.test_ocr import SCANNED, _pdf_with_pages, _scan
from tests.factories import CollectionFactory
from tests.helpers.worker import Worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.mark.timeout(300)
def test_a_scan_uploaded_in_the_admin_becomes_searchable(
    start_worker: Callable[..., Worker], staff_user: Any
) -> None:
    worker = start_worker()  # the defaults: OCR on, OCR_LANGUAGES=eng
    collection: Any = CollectionFactory.create(name="Scans", is_public=True)
    client = Client()
    client.force_login(staff_user)
    scan = _pdf_with_pages([_scan(SCANNED)])
    response = client.post(
        "/admin/documents/document/upload/",
        {"collection": collection.pk, "files": [SimpleUploadedFile("scan.pdf", scan)]},
        follow=True,
    )
    assert response.status_code == 200
    document = Document.objects.get(collection=collection)
    wait_until(
        lambda: Document.objects.get(pk=document.pk).status in ("ready", "failed"),
        timeout=240,
        what="the scanned PDF to be OCR'd",
        workers=[worker],
    )
    document.refresh_from_db()
    assert document.status == "ready", document.error
    found = search(SearchParams(query="zeppelin hangar", mode="keyword"), user=None)
    assert found.results and found.results[0].document_id == document.pk
    assert found.results[0].first_page == 1

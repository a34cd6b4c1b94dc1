"""The documents REST API: uploads, status, edits, new versions, deletion, bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from documents.models import Chunk, CollectionTermStats, Document
from documents.pipeline import documents_process


def _upload(client: APIClient, collection: Any, name: str, data: bytes, **extra: Any) -> Any:
    return client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "file": SimpleUploadedFile(name, data), **extra},
        format="multipart",
    )


def _process_all() -> None:
    documents_process(document_ids=list(Document.objects.values_list("pk", flat=True)))


def test_upload_answers_202_with_status_url_and_processes(
    user_client: APIClient, collection: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _upload(
            user_client,
            collection,
            "a.txt",
            b"Ribosomes translate messenger RNA.",
            metadata='{"team": "bio"}',
            title="Ribosomes",
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["duplicate"] is False
    assert body["status_url"].endswith(f"/api/v1/documents/{body['id']}/")
    assert len(callbacks) == 1  # queued only once the upload committed
    from django_q.models import OrmQ

    assert OrmQ.objects.count() == 1
    _process_all()
    detail = user_client.get(body["status_url"]).json()
    assert detail["status"] == "ready" and detail["chunk_count"] == 1
    assert detail["metadata"] == {"team": "bio"} and detail["title"] == "Ribosomes"


def test_json_text_upload_and_duplicates(user_client: APIClient, collection: Any) -> None:
    first = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "title": "T", "text": "Hello  world\r\n"},
        format="json",
    )
    assert first.status_code == 202
    # The same text, differently wrapped, is the same normalised content.
    again = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "title": "T", "text": "Hello  world\n"},
        format="json",
    )
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["id"] == first.json()["id"]


def test_duplicate_of_failed_document_is_queued_again(
    user_client: APIClient, collection: Any
) -> None:
    first = _upload(user_client, collection, "x.txt", b"text to fail")
    Document.objects.filter(pk=first.json()["id"]).update(status="failed", error="boom")
    again = _upload(user_client, collection, "x.txt", b"text to fail")
    assert again.status_code == 200 and again.json()["status"] == "pending"


def test_list_filters_by_collection_and_status(
    user_client: APIClient, collection: Any, user: Any
) -> None:
    from tests.factories import CollectionFactory

    other = CollectionFactory.create(owner=user)
    _upload(user_client, collection, "a.txt", b"alpha")
    _upload(user_client, other, "b.txt", b"beta")
    listed = user_client.get(f"/api/v1/documents/?collection={collection.slug}").json()
    assert [d["source_name"] for d in listed["results"]] == ["a.txt"]
    assert user_client.get("/api/v1/documents/?status=ready").json()["count"] == 0
    assert user_client.get("/api/v1/documents/?status=pending").json()["count"] == 2


def test_patch_edits_metadata_without_reingesting(user_client: APIClient, collection: Any) -> None:
    doc_id = _upload(user_client, collection, "a.txt", b"Some content here.").json()["id"]
    _process_all()
    chunk_ids = list(Chunk.objects.values_list("id", flat=True))
    response = user_client.patch(
        f"/api/v1/documents/{doc_id}/", {"title": "New", "metadata": {"k": 1}}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "ready" and response.json()["metadata"] == {"k": 1}
    assert list(Chunk.objects.values_list("id", flat=True)) == chunk_ids


def test_put_content_replaces_version_keeping_id(user_client: APIClient, collection: Any) -> None:
    doc_id = _upload(user_client, collection, "a.txt", b"The first version about apples.").json()[
        "id"
    ]
    _process_all()
    response = user_client.put(
        f"/api/v1/documents/{doc_id}/content/",
        {"file": SimpleUploadedFile("a.txt", b"The second version about pears.")},
        format="multipart",
    )
    assert response.status_code == 202 and response.json()["status"] == "pending"
    # Until processed, the old chunks keep serving.
    assert "apples" in Chunk.objects.get(document_id=doc_id).text
    _process_all()
    assert "pears" in Chunk.objects.get(document_id=doc_id).text
    assert Document.objects.get(pk=doc_id).status == "ready"


def test_delete_removes_chunks_statistics_and_original(
    user_client: APIClient, collection: Any, django_capture_on_commit_callbacks: Any
) -> None:
    doc_id = _upload(user_client, collection, "a.txt", b"Delete me soon, please.").json()["id"]
    _process_all()
    path = Path(Document.objects.get(pk=doc_id).original.path)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert user_client.delete(f"/api/v1/documents/{doc_id}/").status_code == 204
    assert not Chunk.objects.exists() and not path.exists()
    stats = CollectionTermStats.objects.get(collection=collection)
    assert (stats.chunk_count, stats.total_length) == (0, 0)


def test_reembed_and_retry_endpoints(user_client: APIClient, collection: Any) -> None:
    doc_id = _upload(user_client, collection, "a.txt", b"Some content here.").json()["id"]
    _process_all()
    assert user_client.post(f"/api/v1/documents/{doc_id}/reembed/").json()["status"] == "pending"
    _process_all()
    Document.objects.filter(pk=doc_id).update(status="failed", error="x", attempts=3)
    body = user_client.post(f"/api/v1/documents/{doc_id}/retry/").json()
    assert body["status"] == "pending" and body["attempts"] == 0


def test_collections_crud(user_client: APIClient) -> None:
    created = user_client.post(
        "/api/v1/collections/", {"name": "Papers", "slug": "papers"}, format="json"
    )
    assert created.status_code == 201 and created.json()["search_config"] == "english"
    updated = user_client.patch("/api/v1/collections/papers/", {"is_public": True}, format="json")
    assert updated.json()["is_public"] is True
    assert user_client.delete("/api/v1/collections/papers/").status_code == 204
    assert user_client.get("/api/v1/collections/papers/").status_code == 404


def test_anonymous_cannot_upload(anon_client: APIClient, public_collection: Any) -> None:
    assert _upload(anon_client, public_collection, "a.txt", b"x").status_code in (401, 403)


# --- Bad input: each gets a clear error, nothing else is lost -------------------------


def _docx_bomb() -> bytes:
    """A ~100 KB DOCX whose document.xml expands past 1 GB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            block = b"<w:t>" + b"A" * (1024 * 1024) + b"</w:t>"
            for _ in range(1030):
                member.write(block)
    return buffer.getvalue()


def _pdf(tmp_path: Path, *, text: bool = True, password: str | None = None) -> bytes:
    from pypdf import PdfReader, PdfWriter
    from reportlab.pdfgen import canvas

    path = tmp_path / "x.pdf"
    pdf = canvas.Canvas(str(path))
    if text:
        pdf.drawString(72, 720, "A page with a text layer.")
    else:
        pdf.rect(72, 72, 300, 300, fill=1)
    pdf.showPage()
    pdf.save()
    if password is None:
        return path.read_bytes()
    writer = PdfWriter(clone_from=PdfReader(path))
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.txt", b"", "empty"),
        ("image.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10, "unsupported file type"),
        ("binary.txt", bytes(range(256)) * 40, "unsupported file type"),
    ],
)
def test_refused_uploads_answer_400(
    user_client: APIClient, collection: Any, name: str, data: bytes, message: str
) -> None:
    response = _upload(user_client, collection, name, data)
    assert response.status_code == 400, response.content
    assert message in response.json()["detail"]
    assert not Document.objects.exists()
    assert user_client.get("/healthz").status_code == 200


def test_over_the_size_limit_answers_413(
    user_client: APIClient, collection: Any, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 1000
    response = _upload(user_client, collection, "big.txt", b"a" * 5000)
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    assert not Document.objects.exists()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "corrupt PDF"),
        ("encrypted", "encrypted PDF"),
        ("scanned", "no extractable text (the PDF has no text layer and no scanned pages)"),
        ("bomb", "zip bomb"),
    ],
)
def test_unreadable_files_end_failed_with_a_reason(
    user_client: APIClient, collection: Any, tmp_path: Path, kind: str, message: str
) -> None:
    data, name = {
        "corrupt": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage \x00\xff" * 20, "c.pdf"),
        "encrypted": (_pdf(tmp_path, password="s3cret"), "e.pdf"),
        "scanned": (_pdf(tmp_path, text=False), "s.pdf"),
        "bomb": (_docx_bomb(), "bomb.docx"),
    }[kind]
    response = _upload(user_client, collection, name, data)
    assert response.status_code == 202, response.content
    _process_all()
    document = Document.objects.get(pk=response.json()["id"])
    assert document.status == "failed"
    assert message in document.error
    assert document.attempts == 1  # deterministic failures are not retried by themselves


def test_hostile_file_names_are_stored_under_generated_names(
    user_client: APIClient, collection: Any
) -> None:
    response = _upload(user_client, collection, "../../etc/pa\x07sswd.txt", b"harmless text")
    assert response.status_code == 202
    document = Document.objects.get(pk=response.json()["id"])
    assert ".." not in document.original.name and "passwd" not in document.original.name
    assert document.original.name.startswith("originals/")
    assert "\x07" not in document.source_name and "/" not in document.source_name


def test_nul_bytes_and_invalid_utf8_are_cleaned(user_client: APIClient, collection: Any) -> None:
    data = "Caf\u00e9 au lait. ".encode("latin-1") * 5 + b"Tea\x00 time."
    response = _upload(user_client, collection, "menu.txt", data)
    _process_all()
    document = Document.objects.get(pk=response.json()["id"])
    assert document.status == "ready", document.error
    assert "\x00" not in document.extracted_text and "Café" in document.extracted_text

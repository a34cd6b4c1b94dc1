"""Uploads that fail leave nothing behind: input PostgreSQL would refuse is refused before a
byte is stored, a row that is not saved takes its file with it, and what still slips
through (a rolled-back transaction, a killed process) is swept. Stored files are private."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError
from django.test import Client
from rest_framework.test import APIClient

from documents.models import Collection, Document
from documents.stored_files import files_sweep_orphaned
from tests.factories import DocumentFactory

TEXT = b"Mitochondria make most of the cell's ATP."
BAD_METADATA = [
    ('{"a": "\\ud800"}', "surrogate"),
    ('{"\\udfff": 1}', "surrogate"),
    ('{"a": "x\\u0000y"}', "NUL"),
    ('{"a": [{"b": "\\u0000"}]}', "NUL"),
    (json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {}}}}}}}}}}}), "deep"),
    ('{"a": NaN}', "finite"),
]


NO_CHUNK_FORMS = {"chunks-TOTAL_FORMS": "0", "chunks-INITIAL_FORMS": "0"}


def _stored_files(settings: Any) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


@pytest.mark.parametrize(("metadata", "problem"), BAD_METADATA)
def test_bad_metadata_in_a_multipart_upload_is_a_400_and_stores_nothing(
    user_client: APIClient, collection: Collection, settings: Any, metadata: str, problem: str
) -> None:
    response = user_client.post(
        "/api/v1/documents/",
        {
            "collection": collection.slug,
            "file": SimpleUploadedFile("a.txt", TEXT),
            "metadata": metadata,
        },
        format="multipart",
    )
    assert response.status_code == 400, response.content
    detail = response.json()["detail"]
    assert detail.startswith("metadata:")
    assert problem.lower() in detail.lower() or (problem == "deep" and "nested" in detail)
    assert Document.objects.count() == 0 and _stored_files(settings) == []


def test_a_lone_surrogate_in_a_json_upload_is_a_400(
    user_client: APIClient, collection: Collection, settings: Any
) -> None:
    body = '{"collection": "%s", "text": "Some words.", "metadata": {"a": "\\ud800"}}'
    response = user_client.generic(
        "POST", "/api/v1/documents/", body % collection.slug, content_type="application/json"
    )
    assert response.status_code == 400 and "surrogate" in response.json()["detail"]
    assert Document.objects.count() == 0 and _stored_files(settings) == []


def test_bad_metadata_in_an_edit_is_a_400(user_client: APIClient, collection: Collection) -> None:
    document = DocumentFactory.create(collection=collection, metadata={"ok": 1})
    response = user_client.generic(
        "PATCH",
        f"/api/v1/documents/{document.pk}/",
        '{"metadata": {"a": "x\\u0000"}}',
        content_type="application/json",
    )
    assert response.status_code == 400 and "NUL" in response.json()["detail"]
    document.refresh_from_db()
    assert document.metadata == {"ok": 1}


def test_an_upload_into_an_unknown_collection_says_how_to_create_one(
    user_client: APIClient, db: None
) -> None:
    response = user_client.post(
        "/api/v1/documents/", {"collection": "nope", "text": "Words."}, format="json"
    )
    assert response.status_code == 400
    assert "POST /api/v1/collections/" in response.json()["detail"]


def test_the_upload_answer_is_the_output_serializer(
    user_client: APIClient, collection: Collection
) -> None:
    response = user_client.post(
        "/api/v1/documents/", {"collection": collection.slug, "text": "Words."}, format="json"
    )
    body = response.json()
    assert response.status_code == 202
    assert set(body) == {"id", "status", "status_url", "duplicate", "document"}
    assert body["status_url"].endswith(f"/api/v1/documents/{body['id']}/")
    assert body["document"]["status_url"] == body["status_url"] and body["duplicate"] is False


def test_a_row_that_cannot_be_saved_takes_its_file_with_it(
    collection: Collection, settings: Any
) -> None:
    from documents.services import document_upload

    # A title PostgreSQL refuses: the service is called directly, past every form.
    with pytest.raises(DataError):
        document_upload(
            collection=collection, user=None, text="Some words.", title="a\x00b", enqueue=False
        )
    assert Document.objects.count() == 0 and _stored_files(settings) == []


def test_stored_originals_are_not_world_readable(
    user_client: APIClient, collection: Collection, settings: Any
) -> None:
    user_client.post(
        "/api/v1/documents/", {"collection": collection.slug, "text": "Words."}, format="json"
    )
    (stored,) = _stored_files(settings)
    assert stat.S_IMODE(stored.stat().st_mode) == 0o640
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o750


def test_large_uploads_spool_outside_tmp() -> None:
    from django.conf import settings

    # A folder of the product's own (which the orphan sweep cleans), never the shared system
    # temp root; the checkout itself may well live under /tmp.
    assert settings.FILE_UPLOAD_TEMP_DIR is not None
    folder = Path(settings.FILE_UPLOAD_TEMP_DIR)
    assert folder.is_dir()
    assert folder.resolve() != Path(tempfile.gettempdir()).resolve()
    assert folder.name == "upload-tmp"


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_old_orphans_only(db: None, settings: Any, tmp_path: Path) -> None:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    kept = DocumentFactory.create()
    kept_path = Path(settings.MEDIA_ROOT) / kept.original.name
    originals = Path(settings.MEDIA_ROOT) / "originals"
    old_orphan, new_orphan = originals / "old.txt", originals / "new.txt"
    for path in (old_orphan, new_orphan):
        path.write_bytes(b"left behind")
    old_temp = Path(settings.FILE_UPLOAD_TEMP_DIR) / "tmpabc.upload.pdf"
    new_temp = Path(settings.FILE_UPLOAD_TEMP_DIR) / "tmpdef.upload.pdf"
    for path in (old_temp, new_temp):
        path.write_bytes(b"half an upload")
    for path in (old_orphan, kept_path, old_temp):
        _age(path, 2 * 3600)

    assert files_sweep_orphaned() == 2
    assert kept_path.exists() and new_orphan.exists() and new_temp.exists()
    assert not old_orphan.exists() and not old_temp.exists()
    assert files_sweep_orphaned() == 0  # nothing left to do: the same answer twice


def test_the_sweep_task_entry_point_runs(db: None, settings: Any) -> None:
    from documents.tasks import sweep_orphaned_files

    orphan = Path(settings.MEDIA_ROOT) / "originals" / "gone.txt"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    _age(orphan, 7200)
    sweep_orphaned_files()
    assert not orphan.exists()


# --- The admin ------------------------------------------------------------------------


@pytest.fixture
def admin_client(staff_user: Any) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.mark.parametrize(("metadata", "problem"), BAD_METADATA)
def test_bad_metadata_on_the_admin_upload_form_is_a_form_error(
    admin_client: Client, collection: Collection, settings: Any, metadata: str, problem: str
) -> None:
    response = admin_client.post(
        "/admin/documents/document/upload/",
        {
            "collection": collection.pk,
            "files": [SimpleUploadedFile("a.txt", TEXT)],
            "metadata": metadata,
        },
    )
    assert response.status_code == 200
    assert "metadata" in response.context["form"].errors
    assert Document.objects.count() == 0 and _stored_files(settings) == []


@pytest.mark.parametrize(("metadata", "problem"), BAD_METADATA)
def test_bad_metadata_on_the_admin_change_form_is_a_form_error(
    admin_client: Client, collection: Collection, metadata: str, problem: str
) -> None:
    document = DocumentFactory.create(collection=collection, metadata={"ok": 1})
    response = admin_client.post(
        f"/admin/documents/document/{document.pk}/change/",
        {"title": "t", "metadata": metadata, **NO_CHUNK_FORMS},
    )
    assert response.status_code == 200
    assert "metadata" in response.context["adminform"].form.errors
    document.refresh_from_db()
    assert document.metadata == {"ok": 1}


def test_a_metadata_edit_in_the_admin_is_saved(admin_client: Client, collection: Any) -> None:
    document = DocumentFactory.create(collection=collection)
    response = admin_client.post(
        f"/admin/documents/document/{document.pk}/change/",
        {"title": "New", "metadata": '{"team": "legal"}', **NO_CHUNK_FORMS},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    document.refresh_from_db()
    assert document.metadata == {"team": "legal"} and document.title == "New"


def test_a_new_collection_can_be_named_on_the_upload_form(db: None, settings: Any) -> None:
    from tests.factories import UserFactory

    staff = UserFactory.create(is_staff=True)  # a fresh install: no collection to choose yet
    client = Client()
    client.force_login(staff)
    index = client.get("/admin/").content.decode()
    assert "/admin/documents/document/upload/" in index
    form = client.get("/admin/documents/document/upload/").content.decode()
    assert 'name="new_collection"' in form
    response = client.post(
        "/admin/documents/document/upload/",
        {"new_collection": "Lab notes", "files": [SimpleUploadedFile("a.txt", TEXT)]},
        follow=True,
    )
    assert response.status_code == 200
    created = Collection.objects.get()
    assert (created.name, created.slug, created.owner) == ("Lab notes", "lab-notes", staff)
    assert Document.objects.get().collection == created
    # The same name again gets its own slug.
    client.post(
        "/admin/documents/document/upload/",
        {"new_collection": "Lab notes", "files": [SimpleUploadedFile("b.txt", b"Other words.")]},
    )
    assert sorted(Collection.objects.values_list("slug", flat=True)) == ["lab-notes", "lab-notes-2"]


def test_the_upload_form_wants_a_collection_or_a_name(
    admin_client: Client, collection: Collection
) -> None:
    files = [SimpleUploadedFile("a.txt", TEXT)]
    neither = admin_client.post("/admin/documents/document/upload/", {"files": files})
    assert "Choose a collection or name a new one." in neither.content.decode()
    both = admin_client.post(
        "/admin/documents/document/upload/",
        {"collection": collection.pk, "new_collection": "x", "files": files},
    )
    assert "not both" in both.content.decode()
    assert Document.objects.count() == 0


def test_the_original_link_on_the_change_page_works(
    admin_client: Client, collection: Collection
) -> None:
    document = DocumentFactory.create(collection=collection)
    page = admin_client.get(f"/admin/documents/document/{document.pk}/change/").content.decode()
    link = f'href="/documents/{document.pk}/original/"'
    assert link in page and "/media/" not in page
    download = admin_client.get(f"/documents/{document.pk}/original/")
    assert download.status_code == 200
    assert download.getvalue() == document.original.open("rb").read()


def test_documents_saved_directly_keep_their_file(collection: Collection, settings: Any) -> None:
    # The factory writes an original like an upload does: the sweep must see it as used.
    document = DocumentFactory.create(
        collection=collection, original=ContentFile(b"x", name="x.txt")
    )
    assert (Path(settings.MEDIA_ROOT) / document.original.name).exists()

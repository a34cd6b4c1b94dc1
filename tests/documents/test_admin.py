"""The documents admin: multi-file upload, the changelist (status, counts, auto-refresh),
form errors, actions, deletion with its side effects, the read-only chunk list, access."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from documents.models import Chunk, Collection, CollectionGrant, CollectionTermStats, Document
from documents.pipeline import documents_process
from tests.factories import CollectionFactory, UserFactory

UPLOAD_URL = "/admin/documents/document/upload/"
CHANGELIST_URL = "/admin/documents/document/"
REFRESH = '<meta http-equiv="refresh"'
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

MARKDOWN = "# Cell biology\n\n## Membranes\n\n" + "\n\n".join(
    f"Paragraph {i}. The lipid bilayer controls transport of ions and molecules number {i}. " * 5
    for i in range(12)
)


@pytest.fixture
def admin_client(staff_user: Any) -> Client:
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def media_root(settings: Any) -> Path:
    return Path(settings.MEDIA_ROOT)


def _pdf(tmp_path: Path) -> bytes:
    from reportlab.pdfgen import canvas

    path = tmp_path / "paper.pdf"
    pdf = canvas.Canvas(str(path))
    for page in range(1, 3):
        pdf.drawString(72, 720, f"Page {page} explains how chloroplasts capture light {page}.")
        pdf.showPage()
    pdf.save()
    return path.read_bytes()


def _upload(client: Client, collection: Collection, files: list[Any], **fields: Any) -> Any:
    return client.post(
        UPLOAD_URL, {"collection": collection.pk, "files": files, **fields}, follow=True
    )


def _errors(response: Any) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["form"].errors.items()}


def test_upload_page_takes_several_files_and_the_changelist_follows_their_progress(
    admin_client: Client, collection: Collection, tmp_path: Path
) -> None:
    page = admin_client.get(UPLOAD_URL)
    assert page.status_code == 200
    assert b'name="files"' in page.content and b"multiple" in page.content

    response = _upload(
        admin_client,
        collection,
        [
            SimpleUploadedFile("notes.txt", b"Ribosomes translate messenger RNA into protein."),
            SimpleUploadedFile("cells.md", MARKDOWN.encode()),
            SimpleUploadedFile("paper.pdf", _pdf(tmp_path)),
        ],
        title="ignored for several files",
        metadata='{"team": "bio"}',
    )
    assert response.redirect_chain == [(CHANGELIST_URL, 302)]
    assert "Queued 3 document(s) for processing." in response.content.decode()
    documents = list(Document.objects.order_by("source_name"))
    assert [d.source_name for d in documents] == ["cells.md", "notes.txt", "paper.pdf"]
    assert {d.status for d in documents} == {"pending"}
    assert all(d.metadata == {"team": "bio"} and d.title == "" for d in documents)
    assert all(d.collection == collection for d in documents)

    # While documents wait, the list says so; it never reloads itself (a script updates
    # the rows in place, tests/documents/test_admin_live.py), a link refreshes it by hand.
    html = response.content.decode()
    assert REFRESH not in html
    assert "3 documents waiting or processing" in html
    assert 'id="refresh-link">Refresh the list</a>' in html
    for column in ("Status", "Chunk count", "Embedding model"):
        assert f">{column}</a>" in html
    assert html.count('<span class="status status-pending">pending</span>') == 3

    documents_process(document_ids=[d.pk for d in documents])
    html = admin_client.get(CHANGELIST_URL).content.decode()
    assert REFRESH not in html and "waiting or processing" not in html
    assert html.count('<span class="status status-ready">ready</span>') == 3
    for document in Document.objects.all():
        assert document.status == "ready", document.error
        assert document.chunk_count >= 1
        assert f'<td class="field-chunk_count">{document.chunk_count}</td>' in html
    assert html.count('<td class="field-embedding_model">all-MiniLM-L6-v2</td>') == 3
    assert "Cell biology" in html  # the Markdown document's title, from its heading


def test_a_single_file_gets_the_title_given_and_duplicates_are_reported(
    admin_client: Client, collection: Collection
) -> None:
    data = b"Chlorophyll absorbs red and blue light."
    _upload(admin_client, collection, [SimpleUploadedFile("a.txt", data)], title="Light")
    assert Document.objects.get().title == "Light"
    again = _upload(admin_client, collection, [SimpleUploadedFile("copy.txt", data)])
    # The message names the file the user chose, so they know which one was a repeat.
    assert (
        "Queued 0 document(s) for processing; already uploaded: copy.txt." in again.content.decode()
    )
    assert Document.objects.count() == 1


def test_invalid_metadata_is_a_form_error_and_nothing_is_stored(
    admin_client: Client, collection: Collection
) -> None:
    for metadata, message in [("{not json", "Not valid JSON"), ("[1, 2]", "JSON object")]:
        response = _upload(
            admin_client, collection, [SimpleUploadedFile("a.txt", b"text")], metadata=metadata
        )
        assert response.status_code == 200 and response.redirect_chain == []
        assert message in _errors(response)["metadata"][0]
    assert not Document.objects.exists()


def test_no_file_is_a_form_error(admin_client: Client, collection: Collection) -> None:
    response = admin_client.post(UPLOAD_URL, {"collection": collection.pk})
    assert response.status_code == 200
    assert _errors(response)["files"] == ["Choose at least one file."]
    assert not Document.objects.exists()


def test_a_file_over_the_size_limit_is_refused(
    admin_client: Client, collection: Collection, settings: Any
) -> None:
    settings.MAX_UPLOAD_BYTES = 100
    response = _upload(admin_client, collection, [SimpleUploadedFile("big.txt", b"x " * 100)])
    assert response.status_code == 200
    assert _errors(response)["files"] == ["big.txt is 200 bytes; the limit is 100."]
    assert not Document.objects.exists()


def test_an_unsupported_binary_file_is_named_in_the_form_error(
    admin_client: Client, collection: Collection, media_root: Path
) -> None:
    response = _upload(admin_client, collection, [SimpleUploadedFile("photo.png", PNG)])
    assert response.status_code == 200 and response.redirect_chain == []
    (error,) = _errors(response)["files"]
    assert error.startswith("photo.png: ") and "PNG image" in error
    assert "photo.png" in response.content.decode()
    assert not Document.objects.exists()
    assert not list(media_root.rglob("*.*"))  # no stored original either


def test_a_bad_file_among_good_ones_does_not_stop_them(
    admin_client: Client, collection: Collection
) -> None:
    response = _upload(
        admin_client,
        collection,
        [SimpleUploadedFile("photo.png", PNG), SimpleUploadedFile("ok.txt", b"Fine text.")],
    )
    assert response.status_code == 200  # the page stays, showing what went wrong
    assert _errors(response)["files"][0].startswith("photo.png: ")
    assert "Queued 1 document(s) for processing." in response.content.decode()
    assert list(Document.objects.values_list("source_name", flat=True)) == ["ok.txt"]


def _action(client: Client, action: str, documents: list[Document]) -> Any:
    return client.post(
        CHANGELIST_URL,
        {"action": action, "_selected_action": [d.pk for d in documents], "index": 0},
        follow=True,
    )


def test_reembed_action_queues_the_selected_documents(
    admin_client: Client, collection: Collection, ingest: Any
) -> None:
    one, two, other = ingest(
        collection, {"a.txt": "alpha enzymes", "b.txt": "beta enzymes", "c.txt": "gamma"}
    )
    response = _action(admin_client, "reembed", [one, two])
    assert "Queued 2 document(s) for re-embedding." in response.content.decode()
    assert dict(Document.objects.values_list("pk", "status")) == {
        one.pk: "pending",
        two.pk: "pending",
        other.pk: "ready",
    }
    # Search keeps the current chunks until the new ones are complete.
    assert Chunk.objects.filter(document__in=[one, two]).count() == 2
    assert "2 documents waiting or processing" in response.content.decode()


def test_retry_failed_action_only_touches_failed_documents(
    admin_client: Client, collection: Collection, ingest: Any
) -> None:
    failed, ready = ingest(collection, {"a.txt": "alpha", "b.txt": "beta"})
    Document.objects.filter(pk=failed.pk).update(status="failed", error="boom", attempts=3)
    response = _action(admin_client, "retry_failed", [failed, ready])
    assert "Queued 1 failed document(s) again." in response.content.decode()
    failed.refresh_from_db()
    ready.refresh_from_db()
    assert (failed.status, failed.error, failed.attempts) == ("pending", "", 0)
    assert ready.status == "ready"


def test_deleting_a_document_removes_its_chunks_statistics_and_file(
    admin_client: Client,
    collection: Collection,
    ingest: Any,
    media_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    keep, drop = ingest(collection, {"keep.txt": "alpha text", "drop.md": MARKDOWN})
    stats = CollectionTermStats.objects.get(collection=collection)
    assert stats.chunk_count == keep.chunk_count + drop.chunk_count
    original = media_root / drop.original.name
    assert original.exists()

    url = f"/admin/documents/document/{drop.pk}/delete/"
    assert admin_client.get(url).status_code == 200  # the confirmation page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST_URL
    assert not Document.objects.filter(pk=drop.pk).exists()
    assert not Chunk.objects.filter(document_id=drop.pk).exists()
    stats.refresh_from_db()
    assert stats.chunk_count == keep.chunk_count
    assert not original.exists()

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/documents/document/{keep.pk}/delete/", {"post": "yes"})
    stats.refresh_from_db()
    assert stats.chunk_count == 0 and stats.total_length == 0
    assert not Chunk.objects.exists()


def test_delete_selected_action_cleans_up_too(
    admin_client: Client, collection: Collection, ingest: Any
) -> None:
    documents = ingest(collection, {"a.txt": "alpha", "b.txt": "beta"})
    admin_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [d.pk for d in documents], "post": "yes"},
    )
    assert not Document.objects.exists() and not Chunk.objects.exists()
    assert CollectionTermStats.objects.get(collection=collection).chunk_count == 0


def test_change_page_lists_the_chunks_read_only(
    admin_client: Client, collection: Collection, ingest: Any
) -> None:
    (document,) = ingest(collection, {"cells.md": MARKDOWN})
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert len(chunks) > 1
    html = admin_client.get(f"/admin/documents/document/{document.pk}/change/").content.decode()
    cells = {
        column: re.findall(rf'<td class="field-{column}">\s*<p>(.*?)</p>', html, re.S)
        for column in ("ordinal", "heading", "token_count", "preview")
    }
    assert cells["ordinal"] == [str(chunk.ordinal) for chunk in chunks]
    assert cells["token_count"] == [str(chunk.token_count) for chunk in chunks]
    for chunk, preview in zip(chunks, cells["preview"], strict=True):
        # Read-only fields show line breaks as <br>.
        assert html_lib.unescape(preview.replace("<br>", "\n")).startswith(chunk.text[:60])
    assert "Cell biology › Membranes" in cells["heading"]
    assert any(preview.endswith("…") for preview in cells["preview"])  # long texts shortened
    # Read-only: no inputs for the chunk fields, no way to add or delete chunks.
    assert 'name="chunks-0-text"' not in html and 'name="chunks-0-ordinal"' not in html
    assert 'id="chunks-empty"' not in html and 'name="chunks-0-DELETE"' not in html


def test_editing_title_and_metadata_keeps_the_chunks(
    admin_client: Client, collection: Collection, ingest: Any
) -> None:
    (document,) = ingest(collection, {"cells.md": MARKDOWN})
    chunk_ids = list(Chunk.objects.filter(document=document).values_list("pk", flat=True))
    data: dict[str, Any] = {
        "title": "Membranes",
        "metadata": '{"reviewed": true}',
        "chunks-TOTAL_FORMS": len(chunk_ids),
        "chunks-INITIAL_FORMS": len(chunk_ids),
        "chunks-MIN_NUM_FORMS": 0,
        "chunks-MAX_NUM_FORMS": 0,
        "_save": "Save",
    }
    for index, pk in enumerate(chunk_ids):
        data[f"chunks-{index}-id"] = pk
        data[f"chunks-{index}-document"] = document.pk
    response = admin_client.post(f"/admin/documents/document/{document.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    document.refresh_from_db()
    assert document.title == "Membranes" and document.metadata == {"reviewed": True}
    assert document.status == "ready"
    assert list(Chunk.objects.filter(document=document).values_list("pk", flat=True)) == chunk_ids


def test_non_staff_users_are_sent_to_the_admin_login(db: None) -> None:
    client = Client()
    client.force_login(UserFactory.create())
    for url in (UPLOAD_URL, CHANGELIST_URL):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"/admin/login/?next={url}"
    anonymous = Client().get(UPLOAD_URL)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")


def test_staff_upload_only_into_collections_they_may_write(db: None) -> None:
    owner = UserFactory.create(is_staff=True)
    theirs = CollectionFactory.create(name="Theirs", owner=owner)
    shared = CollectionFactory.create(name="Shared")
    readable = CollectionFactory.create(name="Readable")
    CollectionGrant.objects.create(collection=shared, user=owner, permission="write")
    CollectionGrant.objects.create(collection=readable, user=owner, permission="read")
    stranger_collection = CollectionFactory.create(name="Stranger")
    client = Client()
    client.force_login(owner)
    page = client.get(UPLOAD_URL).content.decode()
    offered = set(re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', page))
    assert offered == {"Theirs", "Shared"}
    for collection in (readable, stranger_collection):
        response = _upload(client, collection, [SimpleUploadedFile("a.txt", b"x")])
        assert "Select a valid choice" in response.content.decode()
    assert not Document.objects.exists()
    response = _upload(client, theirs, [SimpleUploadedFile("a.txt", b"mine")])
    assert response.status_code == 200 and Document.objects.get().collection == theirs


def test_staff_see_and_change_only_what_they_own_or_were_granted(db: None, ingest: Any) -> None:
    staff = UserFactory.create(is_staff=True)
    own = CollectionFactory.create(name="Own", owner=staff)
    readable = CollectionFactory.create(name="Readable")
    CollectionGrant.objects.create(collection=readable, user=staff, permission="read")
    hidden = CollectionFactory.create(name="Hidden", is_public=True)  # public, but not granted
    (mine,) = ingest(own, {"mine.txt": "Owned text about tides."})
    (theirs,) = ingest(readable, {"theirs.txt": "Readable text about winds."})
    (secret,) = ingest(hidden, {"hidden.txt": "Public text about rain."})
    client = Client()
    client.force_login(staff)
    collections = client.get("/admin/documents/collection/").content.decode()
    assert "Own" in collections and "Readable" in collections and "Hidden" not in collections
    documents = client.get(CHANGELIST_URL).content.decode()
    # Listed by their titles (derived from the text since documents got reader titles).
    mine.refresh_from_db(), theirs.refresh_from_db(), secret.refresh_from_db()
    assert str(mine) in documents and str(theirs) in documents
    assert str(secret) not in documents and ">Hidden<" not in documents  # nor in the filter
    assert client.get(f"{CHANGELIST_URL}{secret.pk}/change/").status_code == 302  # not found
    # Readable only: the change page is view-only and a POST changes nothing.
    view = client.get(f"{CHANGELIST_URL}{theirs.pk}/change/").content.decode()
    assert 'name="title"' not in view
    client.post(f"{CHANGELIST_URL}{theirs.pk}/change/", {"title": "Changed", "metadata": "{}"})
    theirs.refresh_from_db()
    assert theirs.title != "Changed"
    assert client.post(f"{CHANGELIST_URL}{theirs.pk}/delete/", {"post": "yes"}).status_code == 403
    # A bulk delete that includes a document the caller may not write is refused whole.
    refused = client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [mine.pk, theirs.pk], "post": "yes"},
    )
    assert refused.status_code == 403 and Document.objects.count() == 3
    client.post(
        CHANGELIST_URL, {"action": "delete_selected", "_selected_action": [mine.pk], "post": "yes"}
    )
    assert set(Document.objects.values_list("source_name", flat=True)) == {
        "theirs.txt",
        "hidden.txt",
    }
    # Grants are the owner's: a reader does not see the grant inline of someone else's.
    own_page = client.get(f"/admin/documents/collection/{own.pk}/change/").content.decode()
    assert "grants-TOTAL_FORMS" in own_page
    other_page = client.get(f"/admin/documents/collection/{readable.pk}/change/")
    assert "grants-TOTAL_FORMS" not in other_page.content.decode()


def test_the_owner_grants_access_in_the_admin(db: None, ingest: Any) -> None:
    owner, colleague = UserFactory.create(is_staff=True), UserFactory.create()
    collection = CollectionFactory.create(name="Team", slug="team", owner=owner)
    client = Client()
    client.force_login(owner)
    response = client.post(
        f"/admin/documents/collection/{collection.pk}/change/",
        {
            "name": "Team",
            "slug": "team",
            "description": "",
            "search_config": "english",
            "grants-TOTAL_FORMS": "1",
            "grants-INITIAL_FORMS": "0",
            "grants-MIN_NUM_FORMS": "0",
            "grants-MAX_NUM_FORMS": "1000",
            "grants-0-user": str(colleague.pk),
            "grants-0-permission": "write",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    grant = CollectionGrant.objects.get(collection=collection)
    assert (grant.user, grant.permission) == (colleague, "write")
    # A grant naming both a user and a group is a form error, not a crash.
    response = client.post(
        f"/admin/documents/collection/{collection.pk}/change/",
        {
            "name": "Team",
            "slug": "team",
            "description": "",
            "search_config": "english",
            "grants-TOTAL_FORMS": "2",
            "grants-INITIAL_FORMS": "1",
            "grants-MIN_NUM_FORMS": "0",
            "grants-MAX_NUM_FORMS": "1000",
            "grants-0-id": str(grant.pk),
            "grants-0-collection": str(collection.pk),
            "grants-0-user": str(colleague.pk),
            "grants-0-permission": "write",
            "grants-1-user": str(owner.pk),
            "grants-1-group": str(Group.objects.create(name="g").pk),
            "grants-1-permission": "read",
        },
    )
    assert response.status_code == 200
    assert "A grant names either a user or a group." in response.content.decode()
    assert CollectionGrant.objects.count() == 1


def test_the_owner_sets_the_collections_fusion_alpha_in_the_admin(db: None) -> None:
    owner = UserFactory.create(is_staff=True)
    collection = CollectionFactory.create(name="Team", slug="team", owner=owner)
    client = Client()
    client.force_login(owner)
    url = f"/admin/documents/collection/{collection.pk}/change/"
    form = {
        "name": "Team",
        "slug": "team",
        "description": "",
        "search_config": "english",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "grants-MIN_NUM_FORMS": "0",
        "grants-MAX_NUM_FORMS": "1000",
    }
    page = client.get(url).content.decode()
    assert 'name="search_alpha"' in page and "empty: the site default" in page
    refused = client.post(url, {**form, "search_alpha": "1.5"})
    assert refused.status_code == 200
    assert "Ensure this value is less than or equal to 1.0." in refused.content.decode()
    collection.refresh_from_db()
    assert collection.search_alpha is None
    assert client.post(url, {**form, "search_alpha": "0.45"}).status_code == 302
    collection.refresh_from_db()
    assert collection.search_alpha == 0.45
    assert client.post(url, {**form, "search_alpha": ""}).status_code == 302
    collection.refresh_from_db()
    assert collection.search_alpha is None


@pytest.mark.parametrize(
    "query",
    [
        "collection__id__exact=abc",
        "mime_type=%00",
        "mime_type=a%00b",
        "status=%00",
    ],
)
def test_bad_filters_in_the_document_list_get_the_admins_error_page(
    admin_client: Client, collection: Collection, query: str
) -> None:
    response = admin_client.get(f"{CHANGELIST_URL}?{query}")
    assert response.status_code == 302 and response["Location"] == f"{CHANGELIST_URL}?e=1"
    assert admin_client.get(response["Location"]).status_code == 200


def test_a_nul_in_the_search_box_is_reported(admin_client: Client) -> None:
    response = admin_client.get(f"{CHANGELIST_URL}?q=a%00b")
    assert response.status_code == 200 and "Null characters are not allowed" in str(
        response.content
    )
    response = admin_client.get(f"{CHANGELIST_URL}?q=%ED%A0%80")  # a surrogate, as UTF-8
    assert response.status_code == 200


@pytest.mark.parametrize("query", ["title__regex=(", "source_name__iregex=%5B"])
def test_regex_lookups_are_refused_with_a_400(admin_client: Client, query: str) -> None:
    response = admin_client.get(f"{CHANGELIST_URL}?{query}")
    assert response.status_code == 400


def test_the_collection_filter_still_filters(admin_client: Client, ingest: Any) -> None:
    first, second = CollectionFactory.create(name="First"), CollectionFactory.create(name="Second")
    (one,) = ingest(first, {"one.txt": "Only in the first collection."})
    ingest(second, {"two.txt": "Only in the second collection."})
    page = admin_client.get(f"{CHANGELIST_URL}?collection__id__exact={first.pk}")
    assert page.status_code == 200
    assert [d.pk for d in page.context["cl"].result_list] == [one.pk]


def test_bad_filters_in_the_collection_list_do_not_500(admin_client: Client) -> None:
    expected = {"slug=%00": 302, "q=%00": 200, "name__regex=(": 400}
    for query, code in expected.items():
        response = admin_client.get(f"/admin/documents/collection/?{query}")
        assert response.status_code == code, query

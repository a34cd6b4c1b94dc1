"""Management commands: `ingest` (folders into a collection, optionally waiting for the
work), `embed_pending` (do queued work without a worker) and `reembed`."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from documents.models import Chunk, Collection, Document
from documents.services import document_upload
from tests.factories import CollectionFactory

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def _run(*args: str, **options: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, verbosity=0, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """docs/ with nested folders: 2 .txt, 2 .md, 1 .html and one image."""
    root = tmp_path / "docs"
    files = {
        "readme.txt": "Top level notes about photosynthesis and light reactions.",
        "guides/setup.md": "# Setup\n\nInstall the centrifuge before the first run.",
        "guides/deep/usage.md": "# Usage\n\n## Spinning\n\nSpin samples at 4000 rpm.",
        "guides/deep/faq.txt": "Why is the pellet brown? Because of the iron content.",
        "web/page.html": "<html><head><title>Enzymes</title></head>"
        "<body><h1>Enzymes</h1><p>Catalysts lower activation energy.</p></body></html>",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "guides" / "diagram.png").write_bytes(PNG)
    return root


def test_ingest_a_folder_tree_into_a_new_collection_and_wait(db: None, tree: Path) -> None:
    assert not Collection.objects.filter(slug="lab-notes").exists()
    out, err = _run("ingest", str(tree), collection="lab-notes", wait=True)

    collection = Collection.objects.get(slug="lab-notes")
    assert collection.owner is None
    documents = Document.objects.filter(collection=collection)
    assert sorted(documents.values_list("source_name", flat=True)) == [
        "faq.txt",
        "page.html",
        "readme.txt",
        "setup.md",
        "usage.md",
    ]
    for document in documents:
        assert document.status == "ready", (document.source_name, document.error)
        assert document.chunk_count >= 1
        assert Chunk.objects.filter(document=document).count() == document.chunk_count
    assert documents.get(source_name="page.html").mime_type == "text/html"
    assert documents.get(source_name="usage.md").title == "Usage"
    # The image is reported (by name) and did not stop the rest.
    assert "diagram.png" in err and "PNG image" in err
    assert "5 queued, 0 already present, 1 refused into collection 'lab-notes'" in out
    assert "ready: 5, failed: 0" in out


def test_ingest_glob_takes_only_matching_files_and_rerun_reports_duplicates(
    db: None, tree: Path
) -> None:
    out, err = _run("ingest", str(tree), collection="md-only", glob="*.md", wait=True)
    names = Document.objects.filter(collection__slug="md-only").values_list(
        "source_name", flat=True
    )
    assert sorted(names) == ["setup.md", "usage.md"]
    assert "2 queued, 0 already present, 0 refused" in out and "ready: 2, failed: 0" in out
    assert err == ""

    out, _ = _run("ingest", str(tree), collection="md-only", glob="*.md", wait=True)
    assert "0 queued, 2 already present, 0 refused" in out
    assert "ready: 2, failed: 0" in out
    assert Document.objects.filter(collection__slug="md-only").count() == 2


def test_ingest_into_an_existing_collection_with_metadata(db: None, tree: Path) -> None:
    existing = CollectionFactory.create(slug="existing", name="Existing")
    _run(
        "ingest",
        str(tree / "readme.txt"),
        str(tree / "web"),
        collection="existing",
        metadata='{"source": "lab"}',
        wait=True,
    )
    documents = list(Document.objects.order_by("source_name"))
    assert [d.source_name for d in documents] == ["page.html", "readme.txt"]
    assert all(d.collection == existing and d.metadata == {"source": "lab"} for d in documents)
    assert Collection.objects.count() == 1


def test_ingest_without_wait_leaves_the_documents_queued(db: None, tree: Path) -> None:
    out, _ = _run("ingest", str(tree / "guides"), collection="later")
    assert "3 queued" in out and "ready:" not in out
    assert set(Document.objects.values_list("status", flat=True)) == {"pending"}


def test_ingest_refuses_bad_arguments(db: None, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file or folder"):
        _run("ingest", str(tmp_path / "missing"), collection="x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match="no files found"):
        _run("ingest", str(tmp_path / "empty"), collection="x")
    with pytest.raises(CommandError, match="not valid JSON"):
        _run("ingest", str(tmp_path), collection="x", metadata="{oops")
    assert not Collection.objects.exists() and not Document.objects.exists()


def test_embed_pending_processes_documents_left_waiting(db: None, collection: Collection) -> None:
    ids = [
        document_upload(
            collection=collection,
            user=None,
            file=ContentFile(text.encode(), name=name),
            enqueue=False,
        ).document.pk
        for name, text in [("a.txt", "Mitochondria make ATP."), ("b.md", "# Golgi\n\nSorting.")]
    ]
    assert set(Document.objects.values_list("status", flat=True)) == {"pending"}
    out, _ = _run("embed_pending")
    assert "processed 2 document(s)" in out
    for document in Document.objects.filter(pk__in=ids):
        assert document.status == "ready", document.error
        assert document.chunk_count == Chunk.objects.filter(document=document).count() == 1
    out, _ = _run("embed_pending")
    assert "processed 0 document(s)" in out


def test_reembed_queues_one_collection_and_embed_pending_finishes_it(db: None, ingest: Any) -> None:
    target = CollectionFactory.create(slug="target")
    other = CollectionFactory.create(slug="other")
    ingest(target, {"a.txt": "alpha enzymes", "b.txt": "beta enzymes"})
    ingest(other, {"c.txt": "gamma enzymes"})
    chunks_before = set(Chunk.objects.filter(collection=target).values_list("pk", flat=True))

    out, _ = _run("reembed", collection="target")
    assert "queued 2 document(s) for re-embedding" in out
    assert set(Document.objects.filter(collection=target).values_list("status", flat=True)) == {
        "pending"
    }
    assert Document.objects.get(collection=other).status == "ready"
    # Search keeps serving the current chunks until new ones are complete.
    assert set(Chunk.objects.filter(collection=target).values_list("pk", flat=True)) == (
        chunks_before
    )

    out, _ = _run("embed_pending")
    assert "processed 2 document(s)" in out
    assert set(Document.objects.values_list("status", flat=True)) == {"ready"}
    assert Chunk.objects.filter(collection=target).count() == 2
    assert not set(Chunk.objects.filter(collection=target).values_list("pk", flat=True)) & (
        chunks_before
    )


def test_reembed_without_collection_queues_everything(db: None, ingest: Any) -> None:
    ingest(CollectionFactory.create(), {"a.txt": "alpha"})
    ingest(CollectionFactory.create(), {"b.txt": "beta"})
    out, _ = _run("reembed")
    assert "queued 2 document(s)" in out
    assert set(Document.objects.values_list("status", flat=True)) == {"pending"}


def test_reembed_of_a_missing_collection_is_an_error(db: None, ingest: Any) -> None:
    ingest(CollectionFactory.create(), {"a.txt": "alpha"})
    with pytest.raises(CommandError, match="no collection 'missing'"):
        _run("reembed", collection="missing")
    assert Document.objects.get().status == "ready"

"""The database foundation: pgvector, indexes, the vector round trip, DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from pgvector.django import CosineDistance

from documents.models import Chunk, Collection, Document
from tests.helpers.worker import database_url

BASE_DIR = Path(settings.BASE_DIR)


def _document(collection: Collection, sha: str = "a" * 64) -> Document:
    return Document.objects.create(
        collection=collection, title="t", original="originals/x.txt", sha256=sha
    )


def test_vector_extension_is_at_least_0_8(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SHOW server_version_num")
        (server_version,) = cursor.fetchone()
    assert tuple(int(part) for part in version.split(".")[:2]) >= (0, 8)
    assert int(server_version) >= 180000


def test_indexes_exist(collection: Collection) -> None:
    from documents.vector_index import index_for, vector_indexes_sync

    vector_indexes_sync()  # the worker builds the collection's model's index
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes "
            "WHERE tablename IN ('documents_chunk', 'documents_document')"
        )
        rows = cursor.fetchall()
    defs = {name: definition for _, name, definition in rows}
    model = index_for(collection.embedding_model, collection.embedding_dimensions)
    assert (
        "USING hnsw (((embedding)::vector(384)) vector_cosine_ops)" in defs[model.name]
        and "WHERE ((embedding_model)::text = 'all-MiniLM-L6-v2'::text)" in defs[model.name]
    ), defs[model.name]
    assert "USING gin (collection_id, search_vector)" in defs["chunk_collection_search_gin"]
    assert any(
        table == "documents_document" and "btree (status)" in definition
        for table, _, definition in rows
    )
    assert any(
        table == "documents_chunk" and "btree (document_id)" in definition
        for table, _, definition in rows
    )


def test_embedding_round_trips_and_is_found_by_cosine_distance(collection: Collection) -> None:
    document = _document(collection)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(5, 384)).astype(np.float32)
    for ordinal, vector in enumerate(vectors):
        Chunk.objects.create(
            document=document,
            collection=collection,
            ordinal=ordinal,
            text=f"chunk {ordinal}",
            char_start=0,
            char_end=7,
            embedding=vector,
        )
    stored = Chunk.objects.get(document=document, ordinal=3).embedding
    assert np.allclose(stored, vectors[3], atol=1e-6)
    query = vectors[3] + rng.normal(scale=0.01, size=384).astype(np.float32)
    nearest = Chunk.objects.order_by(CosineDistance("embedding", query)).first()
    assert nearest is not None and nearest.ordinal == 3


def test_content_hash_is_unique_per_collection(collection: Collection) -> None:
    _document(collection, sha="b" * 64)
    other = Collection.objects.create(name="Other", slug="other")
    _document(other, sha="b" * 64)  # the same content in another collection is fine
    with pytest.raises(IntegrityError), transaction.atomic():
        _document(collection, sha="b" * 64)


def _run_shell(env: dict[str, str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_database_url_is_honoured_and_nothing_embedded_starts(tmp_path: Path) -> None:
    url = database_url()  # a Unix-socket server is named with ?host=/path
    unused = tmp_path / "must-not-exist"
    env = {**os.environ, "DATABASE_URL": url, "EMBEDDED_PGDATA": str(unused)}
    result = _run_shell(
        env,
        "from django.db import connection; c = connection.cursor(); "
        "c.execute('select current_database()'); print(c.fetchone()[0]); "
        "print(connection.settings_dict['ENGINE'])",
    )
    assert result.returncode == 0, result.stderr
    database, engine = result.stdout.split()
    assert database == connection.settings_dict["NAME"]
    assert engine == "django.db.backends.postgresql"
    assert not unused.exists()


def test_embedded_default_is_used_without_database_url() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = _run_shell(
        env, "from django.conf import settings; print(settings.DATABASES['default']['ENGINE'])"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ragsite.db_backend"

"""One HNSW index per embedding model, over the untyped ``documents_chunk.embedding``.

pgvector's pattern for several dimensions in one table: an expression index that casts
the column to the model's dimensions, partial on the model's name,

    CREATE INDEX ... USING hnsw ((embedding::vector(384)) vector_cosine_ops)
        WHERE embedding_model = 'all-MiniLM-L6-v2'

The search (search/retrieval/_sql.py) repeats the same cast and predicate, with the
name as a literal, so the planner can use the index. Each model's index holds only its
own vectors, so a search of one model never walks past another's.

``EMBEDDING_INDEX_TYPE=halfvec`` indexes ``embedding::halfvec(n)`` instead (half the size;
the table keeps float32). The index type is part of the index name, so changing it
builds the new indexes beside the old ones, and the old ones go once the new are valid.

Indexes are built CONCURRENTLY by the worker (`vector_indexes_sync`, queued when a
collection is created or starts a model change, and hourly), so writes never wait for a
build. A model no collection uses any more loses its index.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from documents.embedding.spec import sql_literal

logger = logging.getLogger(__name__)

INDEX_TYPES = ("vector", "halfvec")
_PREFIX = "chunk_hnsw_"


@dataclass(frozen=True)
class VectorIndex:
    model: str
    dimensions: int
    kind: str = "vector"

    @property
    def name(self) -> str:
        key = f"{self.kind}:{self.dimensions}:{self.model}"
        return _PREFIX + hashlib.sha1(key.encode()).hexdigest()[:16]

    def cast(self, column: str = "c.embedding") -> str:
        """The indexed expression, which a query must repeat to use the index."""
        return f"({column}::{self.kind}({int(self.dimensions)}))"

    def create_sql(self, *, concurrently: bool) -> str:
        return (
            f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {self.name} "
            f"ON documents_chunk USING hnsw ({self.cast('embedding')} {self.kind}_cosine_ops) "
            f"WITH (m = 16, ef_construction = 64) "
            f"WHERE embedding_model = {sql_literal(self.model)}"
        )


def index_type() -> str:
    kind = str(settings.EMBEDDING_INDEX_TYPE)
    if kind not in INDEX_TYPES:
        raise ValueError(f"EMBEDDING_INDEX_TYPE={kind!r}: use one of {', '.join(INDEX_TYPES)}")
    return kind


def index_for(model: str, dimensions: int) -> VectorIndex:
    return VectorIndex(model=model, dimensions=dimensions, kind=index_type())


def wanted_indexes() -> set[VectorIndex]:
    """An index for every model a collection uses or is moving to."""
    from documents.models import Collection

    wanted: set[VectorIndex] = set()
    for name, dims, target in Collection.objects.values_list(
        "embedding_model", "embedding_dimensions", "reembed_target"
    ):
        if name and dims:
            wanted.add(index_for(name, dims))
        if target:
            wanted.add(index_for(target["name"], int(target["dimensions"])))
    return wanted


def existing_indexes() -> dict[str, bool]:
    """Our indexes on the chunk table: name -> valid (a failed concurrent build leaves an
    invalid one behind, which is dropped and built again)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, x.indisvalid
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = 'documents_chunk'::regclass AND i.relname LIKE %s
            """,
            [_PREFIX + "%"],
        )
        return {name: bool(valid) for name, valid in cursor.fetchall()}


def vector_indexes_sync() -> tuple[list[str], list[str]]:
    """Build missing indexes and drop unused ones, CONCURRENTLY (so outside a
    transaction: the worker or a command calls this, never a request). Returns the names
    built and dropped."""
    wanted = {index.name: index for index in wanted_indexes()}
    existing = existing_indexes()
    # CONCURRENTLY cannot run in a transaction block; inside one (a test, a caller that
    # must build before it commits) the build takes the table's write lock instead.
    concurrently = not connection.in_atomic_block
    how = "CONCURRENTLY " if concurrently else ""
    built: list[str] = []
    dropped: list[str] = []
    with connection.cursor() as cursor:
        for name, valid in existing.items():
            if not valid:  # a build that died half-way: drop it so it is built again
                cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
                dropped.append(name)
        for name, index in sorted(wanted.items()):
            if existing.get(name):
                continue
            logger.info("building vector index %s for model %s", name, index.model)
            cursor.execute(index.create_sql(concurrently=concurrently))
            built.append(name)
        # Unused ones last: after a change of index type the new ones serve before the
        # old ones go.
        for name, valid in existing.items():
            if valid and name not in wanted:
                cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
                dropped.append(name)
    return built, dropped

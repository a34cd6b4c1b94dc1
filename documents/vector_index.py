"""One HNSW index per embedding model, over the untyped ``documents_chunk.embedding``.

pgvector's pattern for several dimensions in one table: an expression index that casts
the column to the model's dimensions, partial on the model's name,

    CREATE INDEX ... USING hnsw ((embedding::vector(384)) vector_cosine_ops)
        WHERE embedding_model = 'all-MiniLM-L6-v2'

The search (search/retrieval/_sql.py) repeats the same cast and predicate, with the
name as a literal, so the planner can use the index. Each model's index holds only its
own vectors, so a search of one model never walks past another's.

A collection above SEARCH_DEDICATED_INDEX_MIN_CHUNKS also gets an index of its own
(partial on its id as well: `... AND collection_id = 42`), searched by a branch of its
model's leg with the id as a literal; it keeps it until it shrinks below half that, and
loses it when deleted. Why partial indexes, not LIST partitioning by collection: a
partitioned chunk table needs collection_id in every primary and foreign key (chunk ids
are referenced by the query log and feedback), and a partition per collection for many
small collections costs more than it saves; a partial index needs the literal id, which
the search has, since it reads the scope's collections (and models) first. Small scopes
are ranked exactly anyway (SEARCH_EXACT_MAX_CHUNKS).

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
    # A big collection's own index (partial on its id too); None: the model's shared one.
    collection_id: int | None = None

    @property
    def name(self) -> str:
        key = f"{self.kind}:{self.dimensions}:{self.model}"
        if self.collection_id is not None:
            key += f":{int(self.collection_id)}"
        return _PREFIX + hashlib.sha1(key.encode()).hexdigest()[:16]

    def predicate(self) -> str:
        where = f"embedding_model = {sql_literal(self.model)}"
        if self.collection_id is not None:
            where += f" AND collection_id = {int(self.collection_id)}"
        return where

    def cast(self, column: str = "c.embedding") -> str:
        """The indexed expression, which a query must repeat to use the index."""
        return f"({column}::{self.kind}({int(self.dimensions)}))"

    def create_sql(self, *, concurrently: bool) -> str:
        return (
            f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {self.name} "
            f"ON documents_chunk USING hnsw ({self.cast('embedding')} {self.kind}_cosine_ops) "
            f"WITH (m = 16, ef_construction = 64) WHERE {self.predicate()}"
        )


def index_type() -> str:
    kind = str(settings.EMBEDDING_INDEX_TYPE)
    if kind not in INDEX_TYPES:
        raise ValueError(f"EMBEDDING_INDEX_TYPE={kind!r}: use one of {', '.join(INDEX_TYPES)}")
    return kind


def index_for(model: str, dimensions: int, collection_id: int | None = None) -> VectorIndex:
    return VectorIndex(
        model=model, dimensions=dimensions, kind=index_type(), collection_id=collection_id
    )


def _wants_own_index(chunks: int, has_one: bool) -> bool:
    """Above SEARCH_DEDICATED_INDEX_MIN_CHUNKS a collection gets its own index; it keeps
    it until it shrinks below half that (no rebuild back and forth at the threshold)."""
    threshold = int(settings.SEARCH_DEDICATED_INDEX_MIN_CHUNKS)
    if threshold <= 0:
        return False
    return chunks >= (threshold // 2 if has_one else threshold)


def wanted_indexes() -> set[VectorIndex]:
    """An index for every model a collection uses or is moving to, and one of its own
    for every big collection (documents/vector_index.py's docstring)."""
    from documents.models import Collection

    wanted: set[VectorIndex] = set()
    rows = Collection.objects.values_list(
        "pk",
        "embedding_model",
        "embedding_dimensions",
        "reembed_target",
        "vector_index_dedicated",
        "term_stats__chunk_count",
    )
    for pk, name, dims, target, dedicated, chunks in rows:
        if name and dims:
            wanted.add(index_for(name, dims))
            if _wants_own_index(chunks or 0, dedicated):
                wanted.add(index_for(name, dims, collection_id=pk))
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
        if not concurrently:  # deferred foreign-key checks would block a build here
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
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
        _mark_dedicated(wanted)  # searches use a collection's own index once it is built
        # Unused ones last: after a change of index type the new ones serve before the
        # old ones go.
        for name, valid in existing.items():
            if valid and name not in wanted:
                cursor.execute(f"DROP INDEX {how}IF EXISTS {name}")
                dropped.append(name)
    return built, dropped


def _mark_dedicated(wanted: dict[str, VectorIndex]) -> None:
    from documents.models import Collection

    valid = {name for name, ok in existing_indexes().items() if ok}
    own = {
        index.collection_id
        for name, index in wanted.items()
        if index.collection_id is not None and name in valid
    }
    Collection.objects.exclude(pk__in=own).filter(vector_index_dedicated=True).update(
        vector_index_dedicated=False
    )
    Collection.objects.filter(pk__in=own, vector_index_dedicated=False).update(
        vector_index_dedicated=True
    )

"""The keyword index gains collection_id (btree_gin), built without blocking writes."""

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import (
    AddIndexConcurrently,
    BtreeGinExtension,
    RemoveIndexConcurrently,
)
from django.db import migrations


class Migration(migrations.Migration):
    # CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("documents", "0010_collection_dedicated_vector_index"),
    ]

    operations = [
        # A trusted extension (PostgreSQL 13+): the database owner may create it.
        BtreeGinExtension(),
        AddIndexConcurrently(
            model_name="chunk",
            index=GinIndex(
                fields=["collection", "search_vector"], name="chunk_collection_search_gin"
            ),
        ),
        RemoveIndexConcurrently(model_name="chunk", name="chunk_search_vector_gin"),
    ]

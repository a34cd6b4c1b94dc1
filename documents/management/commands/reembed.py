from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.lifecycle import documents_reembed
from documents.models import Collection


class Command(BaseCommand):
    help = (
        "Queue documents to be chunked and embedded again, e.g. after changing "
        "EMBEDDING_MODEL_NAME or the chunk settings. Search keeps using each document's "
        "current chunks until its new ones are complete (the semantic leg only those of "
        "the active model). Run `manage.py embed_pending` to do the work without a worker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--collection", help="Only this collection (slug).")

    def handle(self, *args: Any, **options: Any) -> None:
        collection = None
        if options["collection"]:
            collection = Collection.objects.filter(slug=options["collection"]).first()
            if collection is None:
                raise CommandError(f"no collection {options['collection']!r}")
        count = documents_reembed(collection=collection)
        self.stdout.write(f"queued {count} document(s) for re-embedding")

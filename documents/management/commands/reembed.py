from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.embedding import EmbeddingError
from documents.embedding.spec import BACKENDS
from documents.lifecycle import documents_reembed
from documents.models import Collection
from documents.reembed import (
    ReembedError,
    ReembedProgress,
    collection_reembed_start,
    reembed_progress,
    reembed_run_inline,
    target_spec,
)

SPEC_OPTIONS = ("backend", "location", "dimensions", "query_prefix", "passage_prefix", "max_tokens")


class Command(BaseCommand):
    help = (
        "With --model: move a collection to another embedding model without downtime "
        "(its documents are chunked and embedded again beside the old chunks, which search "
        "keeps serving, then switched in one transaction). Runs here unless --queue; "
        "running it again after an interruption resumes. --status shows the progress. "
        "Without --model: queue documents to be chunked and embedded again with their "
        "collection's current model (e.g. after changing the chunk settings)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--collection", help="The collection (slug); required with --model.")
        parser.add_argument("--model", help="The new model's name (a hub or server name).")
        parser.add_argument("--backend", choices=BACKENDS, help="Default: EMBEDDING_BACKEND.")
        parser.add_argument(
            "--location",
            help="Model folder (onnx, torch) or server base URL (openai); default: the "
            "settings' for the same backend, the packaged model for another local backend.",
        )
        parser.add_argument("--dimensions", type=int, help="Default: asked of the model.")
        parser.add_argument("--query-prefix", help='e.g. "query: " (e5, bge).')
        parser.add_argument("--passage-prefix", help='e.g. "passage: ".')
        parser.add_argument("--max-tokens", type=int, help="The model's input window.")
        parser.add_argument(
            "--queue", action="store_true", help="Hand the work to the workers and return."
        )
        parser.add_argument("--status", action="store_true", help="Show the progress only.")
        parser.add_argument(
            "--group-size", type=int, default=32, help="Documents staged per step (inline)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        collection = self._collection(options["collection"])
        if options["status"]:
            if collection is None:
                raise CommandError("--status needs --collection")
            self._show(reembed_progress(collection), collection)
            return
        if not options["model"]:
            count = documents_reembed(collection=collection)
            self.stdout.write(f"queued {count} document(s) for re-embedding")
            return
        if collection is None:
            raise CommandError("--model needs --collection")
        try:
            spec = target_spec(model=options["model"], **{k: options[k] for k in SPEC_OPTIONS})
            progress = collection_reembed_start(
                collection=collection, spec=spec, enqueue=options["queue"]
            )
            self._show(progress, collection)
            if options["queue"]:
                return
            progress = reembed_run_inline(
                collection=collection,
                group_size=max(1, options["group_size"]),
                progress=lambda p: self.stdout.write(f"staged {p.staged}/{p.total}"),
            )
        except (ReembedError, EmbeddingError) as exc:
            # Staged documents are kept: running the command again resumes.
            raise CommandError(str(exc)) from exc
        self._show(progress, collection)
        if not progress.done:
            self.stdout.write("not switched yet: documents are being processed; run it again")

    def _collection(self, slug: str | None) -> Collection | None:
        if not slug:
            return None
        collection = Collection.objects.filter(slug=slug).first()
        if collection is None:
            raise CommandError(f"no collection {slug!r}")
        return collection

    def _show(self, progress: ReembedProgress, collection: Collection) -> None:
        collection.refresh_from_db()
        current = f"{collection.embedding_model} ({collection.embedding_dimensions} dimensions)"
        if progress.done:
            self.stdout.write(f"{collection.slug}: model {current}; no model change in progress")
            return
        line = f"{collection.slug}: {current} -> {progress.target}: staged {progress.staged}/"
        self.stdout.write(line + str(progress.total))
        if progress.error:
            self.stdout.write(f"last error: {progress.error}")

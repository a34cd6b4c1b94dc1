"""manage.py ingest PATH... --collection SLUG [--glob PATTERN] [--wait]"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.utils.text import slugify
from tqdm import tqdm

from documents.models import Collection, Document
from documents.pipeline import documents_process_pending
from documents.progress import batch_create
from documents.queue import enqueue_documents
from documents.services import CollectionError, UploadError, collection_create, document_upload
from ragsite.json_safety import check_json

Status = Document.Status


class Command(BaseCommand):
    help = (
        "Ingest files and folders (recursively) into a collection, created if missing. "
        "Acts with full access, like every management command."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--collection", required=True, help="Collection slug.")
        parser.add_argument("--glob", default="*", help="File name pattern inside folders.")
        parser.add_argument("--metadata", default="{}", help="JSON object for every file.")
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Return when every document is ready or failed; does the work in this "
            "process when no worker takes it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            metadata = json.loads(options["metadata"])
        except ValueError as exc:
            raise CommandError(f"--metadata is not valid JSON: {exc}") from exc
        if not isinstance(metadata, dict):
            raise CommandError("--metadata must be a JSON object")
        try:
            check_json(metadata, max_depth=settings.METADATA_MAX_DEPTH)
        except ValueError as exc:  # refused once here rather than once per file
            raise CommandError(f"--metadata: {exc}") from exc
        files = self._files(options["paths"], options["glob"])
        if not files:
            raise CommandError("no files found")
        slug = options["collection"]
        collection = Collection.objects.filter(slug=slug).first()
        if collection is None:
            if slugify(slug) != slug:
                raise CommandError(f"--collection {slug!r} is not a slug (try {slugify(slug)!r})")
            try:
                collection = collection_create(owner=None, name=slug, slug=slug)
            except CollectionError as exc:
                raise CommandError(exc.message) from exc
        queued: list[tuple[int, int]] = []
        ids: list[int] = []
        failures = duplicates = 0
        batch = batch_create()  # one run, one batch: the admin shows its progress bar
        for path in tqdm(files, desc="uploading", unit="file", disable=options["verbosity"] < 1):
            try:
                with path.open("rb") as handle:
                    result = document_upload(
                        collection=collection,
                        user=None,
                        file=File(handle, name=path.name),
                        metadata=metadata,
                        enqueue=False,
                        batch=batch,
                    )
            except UploadError as exc:
                failures += 1
                self.stderr.write(f"{path}: {exc.message}")
                continue
            ids.append(result.document.pk)
            if result.duplicate:
                duplicates += 1
            else:
                queued.append((result.document.pk, result.document.size))
        enqueue_documents(queued)
        self.stdout.write(
            f"{len(queued)} queued, {duplicates} already present, {failures} refused "
            f"into collection {collection.slug!r}"
        )
        if options["wait"]:
            self._wait(collection, ids, quiet=options["verbosity"] < 1)

    def _files(self, paths: list[Path], pattern: str) -> list[Path]:
        found: list[Path] = []
        for path in paths:
            if path.is_dir():
                found.extend(sorted(p for p in path.rglob(pattern) if p.is_file()))
            elif path.is_file():
                found.append(path)
            else:
                raise CommandError(f"{path}: no such file or folder")
        return found

    def _wait(self, collection: Collection, ids: list[int], *, quiet: bool) -> None:
        documents = Document.objects.filter(pk__in=ids)
        with tqdm(total=len(ids), desc="processing", unit="doc", disable=quiet) as bar:

            def finished() -> int:
                return documents.filter(status__in=[Status.READY, Status.FAILED]).count()

            # Work alongside any running worker: claiming is safe between processes,
            # and with no worker this process does all of it (retries too, once due).
            while (done := finished()) < len(ids):
                bar.update(done - bar.n)
                taken = documents_process_pending(
                    collection_id=collection.pk,
                    progress=lambda _: bar.update(finished() - bar.n),
                )
                if not taken:
                    time.sleep(0.5)  # a worker holds some, or a retry is not due yet
            bar.update(finished() - bar.n)
        counts = dict(documents.values_list("status").annotate(n=Count("id")))
        ready, failed = counts.get(Status.READY, 0), counts.get(Status.FAILED, 0)
        self.stdout.write(f"ready: {ready}, failed: {failed}")
        for document in documents.filter(status=Status.FAILED):
            self.stdout.write(f"  failed: {document.source_name}: {document.error}")

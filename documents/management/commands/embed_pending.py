from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from tqdm import tqdm

from documents.lifecycle import claimable
from documents.models import Document
from documents.pipeline import documents_process_pending


class Command(BaseCommand):
    help = "Process every pending document in this process, without a worker."

    def handle(self, *args: Any, **options: Any) -> None:
        total = Document.objects.filter(claimable()).count()
        with tqdm(total=total, unit="doc", disable=options["verbosity"] < 1) as bar:
            documents_process_pending(progress=bar.update)
        self.stdout.write(f"processed {total} document(s)")

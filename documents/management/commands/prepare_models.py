from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents.embedding import EmbeddingError
from documents.embedding.export import export_prepare


class Command(BaseCommand):
    help = (
        "Export the embedding model's weights to int8 ONNX for EMBEDDING_BACKEND=onnx (once "
        "per set of weights, into EMBEDDING_ONNX_DIR; tens of seconds, needs torch, downloads "
        "nothing). Does nothing when the export is there and intact; a missing or damaged "
        "one is made again. `make run` and the Docker image run it for you."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Export again even if intact.")
        parser.add_argument(
            "--always",
            action="store_true",
            help="Prepare the export even when EMBEDDING_BACKEND is not onnx (benchmarks).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.EMBEDDING_BACKEND != "onnx" and not options["always"]:
            self.stdout.write(f"EMBEDDING_BACKEND={settings.EMBEDDING_BACKEND}: nothing to prepare")
            return
        if options["verbosity"] > 0:
            self.stdout.write("Checking the ONNX export of the embedding model...")
        try:
            export, made = export_prepare(force=options["force"])
        except EmbeddingError as exc:
            raise CommandError(str(exc)) from exc
        agreement = export.manifest["agreement"]
        self.stdout.write(
            f"{'exported' if made else 'up to date'}: {export.model_file} (agreement with fp32 "
            f"on {agreement['texts']} texts: mean cosine {agreement['mean_cosine']:.4f}, "
            f"min {agreement['min_cosine']:.4f})"
        )

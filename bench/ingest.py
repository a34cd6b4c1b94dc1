"""End-to-end ingestion throughput against bare encoding, on the SciFact corpus.

    .venv/bin/python bench/ingest.py [--dataset ../shared/datasets/scifact] [--limit N]

1. Writes each corpus document as a Markdown file (title as heading) into a temporary
   folder (not timed).
2. Times `manage.py ingest FOLDER --collection bench-ingest --wait` in a fresh process
   with no worker running: upload, extraction, chunking, embedding, storage and BM25
   indexing of every document until all are ready. Peak memory is that process's.
3. Times bare `SentenceTransformer.encode` (batch size as configured) on exactly the
   texts the pipeline embedded (contextual header + chunk text), in this process.
Reports documents/s, chunks/s and the ratio of end-to-end chunks/s to bare chunks/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from documents.chunk_text import chunk_text  # noqa: E402
from documents.citations import display_title  # noqa: E402
from documents.embedding import get_model  # noqa: E402
from documents.models import Chunk, Collection, Document  # noqa: E402
from documents.services import collection_delete  # noqa: E402

SLUG = "bench-ingest"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/ingest.json")
    args = parser.parse_args()

    existing = Collection.objects.filter(slug=SLUG).first()
    if existing:
        collection_delete(collection=existing)
    with tempfile.TemporaryDirectory() as folder:
        count = 0
        with (args.dataset / "corpus.jsonl").open() as corpus:
            for line in corpus:
                row = json.loads(line)
                text = f"# {row['title'].strip()}\n\n{row['text'].strip()}"
                (Path(folder) / f"{row['_id']}.md").write_text(text)
                count += 1
                if args.limit and count >= args.limit:
                    break
        started = time.perf_counter()
        result = subprocess.run(
            [
                "/usr/bin/time",
                "-v",
                sys.executable,
                "manage.py",
                "ingest",
                folder,
                "--collection",
                SLUG,
                "--wait",
                "--verbosity",
                "0",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if peak is None:
        sys.exit(f"/usr/bin/time -v printed no peak memory:\n{result.stderr}")
    peak_kb = int(peak[1])
    collection = Collection.objects.get(slug=SLUG)
    ready = Document.objects.filter(collection=collection, status=Document.Status.READY).count()
    chunks = list(
        Chunk.objects.filter(collection=collection)
        .select_related("document")
        .only("text", "heading_path", "document__title", "document__source_name")
    )
    texts = [
        chunk_text(
            text=chunk.text,
            title=display_title(chunk.document.title, chunk.document.source_name) or None,
            heading_path=chunk.heading_path,
        ).embedded
        for chunk in chunks
    ]
    model = get_model()
    model.encode(texts[:64], batch_size=settings.EMBEDDING_BATCH_SIZE, show_progress_bar=False)
    encode_started = time.perf_counter()
    model.encode(
        texts,
        batch_size=settings.EMBEDDING_BATCH_SIZE,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    encode_seconds = time.perf_counter() - encode_started

    report = {
        "documents": count,
        "ready": ready,
        "chunks": len(chunks),
        "end_to_end_seconds": round(elapsed, 1),
        "documents_per_second": round(count / elapsed, 2),
        "chunks_per_second": round(len(chunks) / elapsed, 2),
        "peak_memory_mb": round(peak_kb / 1024),
        "bare_encode_seconds": round(encode_seconds, 1),
        "bare_encode_chunks_per_second": round(len(chunks) / encode_seconds, 2),
        "ratio": round((len(chunks) / elapsed) / (len(chunks) / encode_seconds), 3),
        "batch_size": settings.EMBEDDING_BATCH_SIZE,
    }
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

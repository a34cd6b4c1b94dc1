"""The document page of a long document: how long the server takes to answer it.

    .venv/bin/python bench/viewer.py [--chunks 1000] [--repeat 3] [--keep]

1. Creates a dedicated database, `<product database>_viewer` (bench/benchdb.py; the
   product's data is never touched), migrates it, and stores one public document of
   --chunks chunks of about 200 tokens that overlap like the chunker's (its text in
   `extracted_text`, chunks as offsets into it; no embeddings: the page does not read them).
2. Requests the page through Django's test client (the whole stack: middleware, view,
   queries, template) --repeat times as the reader arrives from a search: cited chunk in
   the middle of the document, the query in `back`. One unmeasured request first.
3. Prints the median and every timing as JSON; drops the database unless --keep.

Issue 14 asks for a 1,000-chunk document's page in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

from bench.benchdb import database_create, database_drop, use_database  # noqa: E402

DATABASE = use_database("viewer")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from documents.models import Chunk, Collection, Document  # noqa: E402

SENTENCE = "Sentence {n} of the long report describes the lava field and its {n} vents."
SENTENCES_PER_CHUNK = 12  # about 200 tokens
OVERLAP_SENTENCES = 2  # about 30 tokens, like CHUNK_OVERLAP_TOKENS


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1000, help="chunks in the document")
    parser.add_argument("--repeat", type=int, default=3, help="measured requests")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args()


def build(chunks: int) -> tuple[Document, Chunk]:
    """One document of `chunks` overlapping chunks; returns it and its middle chunk."""
    step = SENTENCES_PER_CHUNK - OVERLAP_SENTENCES
    count = step * chunks + OVERLAP_SENTENCES
    sentences = [SENTENCE.format(n=n) for n in range(count)]
    starts = [0]
    for sentence in sentences:
        starts.append(starts[-1] + len(sentence) + 1)
    text = " ".join(sentences)
    collection = Collection.objects.create(name="Viewer bench", slug="viewer", is_public=True)
    document = Document.objects.create(
        collection=collection,
        title="A long report",
        source_name="report.txt",
        mime_type="text/plain",
        sha256="0" * 64,
        status=Document.Status.READY,
        chunk_count=chunks,
        extracted_text=text,
    )
    rows = []
    for ordinal in range(chunks):
        first = ordinal * step
        start, end = starts[first], starts[first + SENTENCES_PER_CHUNK] - 1
        rows.append(
            Chunk(
                document=document,
                collection=collection,
                ordinal=ordinal,
                text=text[start:end],
                char_start=start,
                char_end=end,
                token_count=200,
            )
        )
    Chunk.objects.bulk_create(rows, batch_size=500)
    middle = Chunk.objects.get(document=document, ordinal=chunks // 2)
    return document, middle


def measure(document: Document, cited: Chunk, repeat: int) -> list[float]:
    client = Client(HTTP_HOST="localhost")
    url = f"/documents/{document.pk}/"
    params = {"chunk": str(cited.pk), "back": "q=lava+vents&mode=semantic"}
    timings = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        response = client.get(url, params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or f'id="chunk-{cited.pk}"' not in response.text:
            raise SystemExit(f"unexpected page: HTTP {response.status_code}")
        if attempt:  # the first request warms the connection and the template cache
            timings.append(elapsed)
    return timings


def main() -> None:
    args = _arguments()
    # The manifest storage needs `collectstatic`; the page's static URLs are not measured.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    database_create(DATABASE, replace=True)
    try:
        call_command("migrate", verbosity=0, interactive=False)
        document, cited = build(args.chunks)
        timings = measure(document, cited, args.repeat)
    finally:
        if not args.keep:
            database_drop(DATABASE)
    result = {
        "benchmark": "document page",
        "chunks": args.chunks,
        "text_chars": len(document.extracted_text),
        "median_ms": round(statistics.median(timings), 1),
        "timings_ms": [round(t, 1) for t in timings],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""Junk chunks before and after issue 17 (boilerplate removal, CHUNK_MIN_TOKENS): the
share of chunks under 25 tokens, and the chunk count.

    .venv/bin/python bench/junk_chunks.py --folder PATH [--limit 300] [--min-tokens 40]
    .venv/bin/python bench/junk_chunks.py --collection SLUG

--folder: every file under PATH (HTML pages, PDFs, anything the product reads) extracted
and chunked in-process as the worker does, twice: "before" with STRIP_BOILERPLATE off and
CHUNK_MIN_TOKENS 0 (the behaviour before issue 17), "after" with both on; plus the two
changes alone. Also the time taken (extraction + chunking; the embedding, not measured
here, dominates ingestion). No database, no model.
--collection: the chunks an ingested collection holds (whatever settings made them).
Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from documents.chunking import chunk_document  # noqa: E402
from documents.extraction import extract  # noqa: E402
from documents.extraction.types import ExtractionError  # noqa: E402

JUNK_TOKENS = 25


def _summary(label: str, counts: list[int], documents: int, **extra: object) -> dict[str, object]:
    return {
        "config": label,
        "documents": documents,
        "chunks": len(counts),
        f"share_under_{JUNK_TOKENS}": round(sum(c < JUNK_TOKENS for c in counts) / len(counts), 4)
        if counts
        else None,
        "median_tokens": statistics.median(counts) if counts else None,
        **extra,
    }


def _files(folder: Path, limit: int) -> list[Path]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return files[:limit] if limit else files


def _run(files: Iterable[Path], *, strip: bool, min_tokens: int) -> tuple[list[int], int, float]:
    """Token counts of every chunk, documents read, and seconds taken."""
    settings.STRIP_BOILERPLATE = strip  # read by the extractors at each call
    counts: list[int] = []
    documents = 0
    started = time.perf_counter()
    for path in files:
        try:
            extracted = extract(path.read_bytes(), filename=path.name)
        except ExtractionError:
            continue  # images, stylesheets... of a crawled folder: not documents
        documents += 1
        chunks = chunk_document(
            extracted,
            max_tokens=settings.CHUNK_MAX_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            min_tokens=min_tokens,
        )
        counts.extend(chunk.token_count for chunk in chunks)
    return counts, documents, time.perf_counter() - started


def folder_report(folder: Path, limit: int, min_tokens: int) -> None:
    files = _files(folder, limit)
    configs = [
        ("before", False, 0),
        ("boilerplate only", True, 0),
        ("min tokens only", False, min_tokens),
        ("after", True, min_tokens),
    ]
    for label, strip, minimum in configs:
        counts, documents, seconds = _run(files, strip=strip, min_tokens=minimum)
        line = _summary(
            label,
            counts,
            documents,
            strip_boilerplate=strip,
            min_tokens=minimum,
            seconds=round(seconds, 2),
        )
        print(json.dumps(line), flush=True)


def collection_report(slug: str) -> None:
    from documents.models import Chunk

    chunks = Chunk.objects.filter(document__collection__slug=slug)
    counts = list(chunks.values_list("token_count", flat=True))
    documents = chunks.values("document").distinct().count()
    print(json.dumps(_summary(slug, counts, documents)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", type=Path, help="files to extract and chunk in-process")
    source.add_argument("--collection", help="slug of an ingested collection")
    parser.add_argument("--limit", type=int, default=0, help="first N files only (0: all)")
    parser.add_argument("--min-tokens", type=int, default=40, help="CHUNK_MIN_TOKENS after")
    args = parser.parse_args()
    if args.collection:
        collection_report(args.collection)
    else:
        folder_report(args.folder, args.limit, args.min_tokens)


if __name__ == "__main__":
    main()

"""End-to-end ingestion throughput against bare encoding, on the SciFact corpus.

    .venv/bin/python bench/ingest.py [--dataset ../shared/datasets/scifact] [--limit N]
        [--backends onnx,torch]

1. Writes each corpus document as a Markdown file (title as heading) into a temporary
   folder (not timed).
2. Times `manage.py ingest FOLDER --collection bench-ingest --wait` in a fresh process
   with no worker running, on a database of its own (`<product database>_ingest`,
   bench/benchdb.py, migrated here): upload, extraction, chunking, embedding, storage and BM25
   indexing of every document until all are ready. Peak memory is that process's.
3. Times bare encoding with the same backend (batch size as configured) on exactly the
   texts the pipeline embedded (contextual header + chunk text), in this process.
Steps 2 and 3 run once per --backends value (EMBEDDING_BACKEND: onnx,torch by default),
on the same files in one invocation. Reports per backend documents/s, chunks/s and the
ratio of end-to-end chunks/s to bare chunks/s, and onnx's documents/s over torch's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

from bench.benchdb import database_create, database_exists, database_url, use_database  # noqa: E402

# A database of its own (bench/benchdb.py): the product's data is never touched.
DATABASE = use_database("ingest")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from documents.chunk_text import chunk_text  # noqa: E402
from documents.citations import display_title  # noqa: E402
from documents.embedding import get_model  # noqa: E402
from documents.embedding.export import export_prepare  # noqa: E402
from documents.models import Chunk, Collection, Document  # noqa: E402
from documents.services import collection_delete  # noqa: E402

SLUG = "bench-ingest"


def write_corpus(dataset: Path, folder: Path, limit: int) -> int:
    count = 0
    with (dataset / "corpus.jsonl").open() as corpus:
        for line in corpus:
            row = json.loads(line)
            text = f"# {row['title'].strip()}\n\n{row['text'].strip()}"
            (folder / f"{row['_id']}.md").write_text(text)
            count += 1
            if limit and count >= limit:
                break
    return count


# Issue 17's chunking changes off and on: ingestion speed must not suffer from them.
CHUNKING_VARIANTS: dict[str, dict[str, str]] = {
    "before": {"STRIP_BOILERPLATE": "false", "CHUNK_MIN_TOKENS": "0"},
    "after": {},
}


def ingest_once(
    folder: str, count: int, backend: str, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Steps 2 and 3 with one backend: the ingest in a fresh process, then bare encoding."""
    existing = Collection.objects.filter(slug=SLUG).first()
    if existing:
        collection_delete(collection=existing)
    command = [sys.executable, "manage.py", "ingest", folder, "--collection", SLUG, "--wait"]
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command, "--verbosity", "0"],
        cwd=ROOT,
        env={
            **os.environ,
            "EMBEDDING_BACKEND": backend,
            "DATABASE_URL": database_url(),
            **(extra_env or {}),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if peak is None:
        sys.exit(f"/usr/bin/time -v printed no peak memory:\n{result.stderr}")
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
    model = get_model(backend)
    model.embed(texts[:64], settings.EMBEDDING_BATCH_SIZE)  # warm-up, not timed
    encode_started = time.perf_counter()
    model.embed(texts, settings.EMBEDDING_BATCH_SIZE)
    encode_seconds = time.perf_counter() - encode_started
    return {
        "documents": count,
        "ready": ready,
        "chunks": len(chunks),
        "end_to_end_seconds": round(elapsed, 1),
        "documents_per_second": round(count / elapsed, 2),
        "chunks_per_second": round(len(chunks) / elapsed, 2),
        "peak_memory_mb": round(int(peak[1]) / 1024),
        "bare_encode_seconds": round(encode_seconds, 1),
        "bare_encode_chunks_per_second": round(len(chunks) / encode_seconds, 2),
        "ratio": round((len(chunks) / elapsed) / (len(chunks) / encode_seconds), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/scifact"))
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--backends", default="onnx,torch", help="EMBEDDING_BACKEND values")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/ingest.json")
    parser.add_argument(
        "--folder", type=Path, help="Ingest these files (e.g. var/corpora/pydoc) instead"
    )
    parser.add_argument(
        "--chunking-compare",
        type=int,
        default=0,
        metavar="N",
        help="Ingest N times each with issue 17's chunking changes off and on, alternating "
        "(onnx), and report the medians",
    )
    args = parser.parse_args()
    if args.chunking_compare:
        compare_chunking(args)
        return
    backends = [kind.strip() for kind in args.backends.split(",") if kind.strip()]
    if "onnx" in backends:
        export_prepare()  # made once, before anything is timed
    if not database_exists(DATABASE):
        database_create(DATABASE)
    call_command("migrate", verbosity=0, interactive=False)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        count = write_corpus(args.dataset, Path(folder), args.limit)
        for backend in backends:
            results[backend] = ingest_once(folder, count, backend)
    report: dict[str, Any] = {
        "batch_size": settings.EMBEDDING_BATCH_SIZE,
        "backends": results,
    }
    if {"onnx", "torch"} <= set(results):
        report["onnx_vs_torch_documents_per_second"] = round(
            results["onnx"]["documents_per_second"] / results["torch"]["documents_per_second"], 2
        )
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


def compare_chunking(args: argparse.Namespace) -> None:
    export_prepare()
    if not database_exists(DATABASE):
        database_create(DATABASE)
    call_command("migrate", verbosity=0, interactive=False)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CHUNKING_VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        if args.folder:
            folder, count = str(args.folder), len([p for p in args.folder.iterdir() if p.is_file()])
        else:
            folder, count = scratch, write_corpus(args.dataset, Path(scratch), args.limit)
        for _ in range(args.chunking_compare):
            for name, env in CHUNKING_VARIANTS.items():
                runs[name].append(ingest_once(folder, count, "onnx", env))
                print(name, json.dumps(runs[name][-1]), flush=True)
    medians = {
        name: {
            key: statistics.median(run[key] for run in rows)
            for key in ("end_to_end_seconds", "documents_per_second", "chunks")
        }
        for name, rows in runs.items()
    }
    report = {
        "folder": str(args.folder or args.dataset),
        "runs": runs,
        "medians": medians,
        "after_vs_before_documents_per_second": round(
            medians["after"]["documents_per_second"] / medians["before"]["documents_per_second"],
            3,
        ),
    }
    print(json.dumps({"medians": medians, **{k: v for k, v in report.items() if k != "runs"}}))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Embedding speed per backend (onnx int8 vs torch fp32) on the same texts, in one run.

    .venv/bin/python bench/embedding.py [--dataset ../shared/datasets/scifact]
        [--limit DOCS] [--queries N] [--repeats 3] [--backends onnx,torch]

- Chunks: SciFact corpus documents chunked as the pipeline chunks them (Markdown with the
  title as heading -> extraction -> chunker -> contextual header + chunk text), embedded
  with EMBEDDING_BATCH_SIZE: chunks/s.
- Agreement: mean and minimum cosine between the int8 export's vectors and fp32's on
  those same chunks.
- Queries: SciFact train queries, one at a time as the search API embeds them (the query
  cache bypassed): p50 and p95 latency.
Each figure is the median of --repeats runs, each in a fresh process with one backend
(as served); the backends alternate run by run so that a noisy neighbour hurts both
alike. Both use EMBEDDING_THREADS (default: every core). Prints JSON (with the CPU's
flags: AVX512-VNNI or not) and writes it to --output.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.conf import settings  # noqa: E402

from documents.chunk_text import chunk_text  # noqa: E402
from documents.chunking import chunk_document  # noqa: E402
from documents.citations import display_title  # noqa: E402
from documents.embedding import get_model, model_path  # noqa: E402
from documents.embedding._source import thread_count  # noqa: E402
from documents.embedding.export import agreement, export_prepare  # noqa: E402
from documents.extraction import extract  # noqa: E402


def cpu_flags() -> dict[str, Any]:
    flags: set[str] = set()
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
    return {
        "model": model,
        "cores": len(os.sched_getaffinity(0)),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "avx2": "avx2" in flags,
    }


def corpus_chunks(dataset: Path, limit: int) -> list[str]:
    """What the pipeline embeds for each of the first ``limit`` SciFact documents."""
    texts: list[str] = []
    with (dataset / "corpus.jsonl").open() as corpus:
        for number, line in enumerate(corpus):
            if number >= limit:
                break
            row = json.loads(line)
            name = f"{row['_id']}.md"
            data = f"# {row['title'].strip()}\n\n{row['text'].strip()}".encode()
            extracted = extract(data, filename=name)
            spans = chunk_document(
                extracted,
                max_tokens=settings.CHUNK_MAX_TOKENS,
                overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            )
            title = display_title(extracted.title, name)
            texts.extend(
                chunk_text(
                    text=extracted.text[span.start : span.end],
                    title=title,
                    heading_path=span.heading_path,
                ).embedded
                for span in spans
            )
    return texts


def train_queries(dataset: Path, count: int) -> list[str]:
    with (dataset / "queries_train.jsonl").open() as queries:
        return [json.loads(line)["text"] for line, _ in zip(queries, range(count), strict=False)]


def _chunks_per_second(kind: str, texts: list[str]) -> float:
    model = get_model(kind)
    started = time.perf_counter()
    model.embed(texts, settings.EMBEDDING_BATCH_SIZE)
    return len(texts) / (time.perf_counter() - started)


def _query_latencies_ms(kind: str, queries: list[str]) -> list[float]:
    model = get_model(kind)
    latencies = []
    for query in queries:
        started = time.perf_counter()
        model.embed([query], 1)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def measure(kind: str, texts: list[str], queries: list[str]) -> dict[str, float]:
    """One run of one backend, in this process (loaded and warmed up first, not timed)."""
    get_model(kind).embed(texts[:32] + queries[:8], settings.EMBEDDING_BATCH_SIZE)
    latencies = _query_latencies_ms(kind, queries)
    return {
        "chunks_per_second": _chunks_per_second(kind, texts),
        "query_p50_ms": float(np.percentile(latencies, 50)),
        "query_p95_ms": float(np.percentile(latencies, 95)),
    }


def run(args: argparse.Namespace, backends: list[str]) -> dict[str, Any]:
    """Each run of each backend in a fresh process, as served: one backend per process
    (onnxruntime and torch in one process compete for threads and slow each other)."""
    runs: dict[str, dict[str, list[float]]] = {kind: {} for kind in backends}
    for _ in range(args.repeats):
        for kind in backends:
            command = [sys.executable, __file__, "--single", kind, "--dataset", str(args.dataset)]
            command += ["--limit", str(args.limit), "--queries", str(args.queries)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            for name, value in json.loads(output.strip().splitlines()[-1]).items():
                runs[kind].setdefault(name, []).append(value)
    return {
        kind: {name: round(statistics.median(values), 2) for name, values in figures.items()}
        | {"runs": {name: [round(v, 2) for v in values] for name, values in figures.items()}}
        for kind, figures in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--limit", type=int, default=500, help="corpus documents to chunk")
    parser.add_argument("--queries", type=int, default=200, help="train queries to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", default="onnx,torch")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/embedding.json")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # one run of one backend
    args = parser.parse_args()
    texts = corpus_chunks(args.dataset, args.limit)
    queries = train_queries(args.dataset, args.queries)
    if args.single:
        print(json.dumps(measure(args.single, texts, queries)))
        return
    backends = [kind.strip() for kind in args.backends.split(",") if kind.strip()]
    export, _ = export_prepare()  # made once; a no-op when it is there
    results = run(args, backends)
    # Agreement of the export with fp32 on these very chunks (after the timed runs: it
    # loads both backends into this process).
    scifact_agreement = agreement(model_path(), export.model_file, texts)
    report: dict[str, Any] = {
        "cpu": cpu_flags(),
        "threads": thread_count(),
        "batch_size": settings.EMBEDDING_BATCH_SIZE,
        "chunks": len(texts),
        "queries": len(queries),
        "repeats": args.repeats,
        "agreement_scifact_chunks": scifact_agreement,
        "agreement_export_sample": export.manifest["agreement"],
        "backends": results,
    }
    if {"onnx", "torch"} <= set(results):
        onnx, torch = results["onnx"], results["torch"]
        report["onnx_vs_torch"] = {
            "chunks_per_second": round(onnx["chunks_per_second"] / torch["chunks_per_second"], 2),
            "query_p50_speedup": round(torch["query_p50_ms"] / onnx["query_p50_ms"], 2),
            "query_p95_speedup": round(torch["query_p95_ms"] / onnx["query_p95_ms"], 2),
        }
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

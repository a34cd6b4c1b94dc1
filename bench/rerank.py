"""Reranking latency: a MiniLM-L6 cross-encoder (the architecture of
cross-encoder/ms-marco-MiniLM-L-6-v2) on this CPU, with torch and with onnxruntime.

    .venv/bin/python bench/rerank.py [--dataset ../shared/datasets/scifact]
        [--depths 10,50,100,200] [--queries 20] [--model FOLDER] [--backends torch,onnx]
        [--output bench/results/rerank.json]

No reranker weights can be fetched here, so by default the model has random weights
(tests/helpers/cross_encoder.py): the work per candidate is the architecture's, whatever
the weights. --model FOLDER measures a real CrossEncoder folder instead (with an
`onnx/model.onnx` for the onnx backend). Each query reranks `depth` candidates through
the code the search runs (search/rerank/_local.py): SciFact train queries against SciFact
abstracts cut to about CHUNK_MAX_TOKENS words, as chunks are (synthetic text without the
dataset). Reports, per backend and depth, p50 and p95 per query and the p50 per
candidate. Threads: EMBEDDING_THREADS (default: every core) for both runtimes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from search.rerank._local import OnnxCrossEncoder, TorchCrossEncoder, onnx_file  # noqa: E402


def texts_and_queries(dataset: Path | None, count: int) -> tuple[list[str], list[str]]:
    words = settings.CHUNK_MAX_TOKENS * 3 // 4  # about a chunk's worth of tokens
    if dataset is not None and (dataset / "corpus.jsonl").is_file():
        with (dataset / "corpus.jsonl").open() as corpus:
            rows = [json.loads(line) for _, line in zip(range(2000), corpus, strict=False)]
        texts = [" ".join(f"{r['title']} {r['text']}".split()[:words]) for r in rows]
        with (dataset / "queries_train.jsonl").open() as queries_file:
            queries = [json.loads(line)["text"] for line in queries_file][:count]
        return texts, queries
    rng = random.Random(0)
    vocabulary = "cell protein gene patients risk study effect levels cancer mice".split()
    texts = [" ".join(rng.choices(vocabulary, k=words)) for _ in range(400)]
    return texts, [" ".join(rng.choices(vocabulary, k=6)) for _ in range(count)]


def measure(
    model: TorchCrossEncoder | OnnxCrossEncoder,
    texts: list[str],
    queries: list[str],
    depth: int,
) -> dict[str, float]:
    rng = random.Random(depth)
    model.score(queries[0], texts[:depth])  # warm-up: first-call allocations
    timings: list[float] = []
    for query in queries:
        candidates = rng.sample(texts, depth)
        started = time.perf_counter()
        model.score(query, candidates)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p50 = statistics.median(timings)
    return {
        "depth": depth,
        "queries": len(queries),
        "p50_ms": round(p50, 1),
        "p95_ms": round(timings[min(len(timings) - 1, round(0.95 * (len(timings) - 1)))], 1),
        "per_candidate_ms": round(p50 / depth, 2),
    }


def model_folders(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    if args.model:
        folder = Path(args.model)
        return {"torch": folder, "onnx": folder}
    from tests.helpers.cross_encoder import build_cross_encoder, export_onnx

    plain = build_cross_encoder(work / "minilm-l6-random")
    exported = work / "minilm-l6-random-onnx"
    shutil.copytree(plain, exported)
    export_onnx(exported)
    return {"torch": plain, "onnx": exported}


def load(backend: str, folder: Path) -> TorchCrossEncoder | OnnxCrossEncoder:
    if backend == "torch":
        import torch

        if settings.EMBEDDING_THREADS > 0:
            torch.set_num_threads(settings.EMBEDDING_THREADS)
        return TorchCrossEncoder(folder)
    model_file = onnx_file(folder)
    if model_file is None:
        raise SystemExit(f"{folder} has no onnx/model.onnx: leave onnx out of --backends")
    return OnnxCrossEncoder(folder, model_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--depths", default="10,50,100,200")
    parser.add_argument("--queries", type=int, default=20, help="Queries per depth.")
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--model", help="A CrossEncoder folder (default: random weights).")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    texts, queries = texts_and_queries(args.dataset, args.queries)
    if max(depths) > len(texts):
        raise SystemExit(f"only {len(texts)} candidate texts for depth {max(depths)}")
    report: dict[str, Any] = {
        "model": args.model or "random-weight MiniLM-L6 cross-encoder (384 hidden, 6 layers)",
        "cpus": os.cpu_count(),
        "threads": settings.EMBEDDING_THREADS or os.cpu_count(),
        "candidate_words": settings.CHUNK_MAX_TOKENS * 3 // 4,
        "results": {},
    }
    with tempfile.TemporaryDirectory() as work:
        folders = model_folders(args, Path(work))
        for backend in args.backends.split(","):
            model = load(backend, folders[backend])
            report["results"][backend] = [measure(model, texts, queries, d) for d in depths]
    print(json.dumps(report, indent=2))
    print("\n| backend | depth | p50 ms/query | p95 ms/query | ms/candidate |")
    print("|---|---:|---:|---:|---:|")
    for backend, rows in report["results"].items():
        for row in rows:
            print(
                f"| {backend} | {row['depth']} | {row['p50_ms']} | {row['p95_ms']} "
                f"| {row['per_candidate_ms']} |"
            )
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

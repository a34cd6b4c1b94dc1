"""A big collection beside a million other chunks (issue 19, point 5): does its own
vector index make it as fast as the same collection alone?

    .venv/bin/python bench/beside.py [--target 20000] [--others 1000000] [--queries 100]
        [--output bench/results/beside.json] [--rebuild] [--drop]

Two scale sets, built and measured by bench/_scale_set.py (see bench/scale.py for how
the synthetic chunks are made), each in a database of its own:
- alone: the target collection of `--target` chunks by itself;
- beside: `--others` chunks in one collection plus the target collection (another seed
  of the same generator), loaded together. The target is searched first through the
  shared model index (filtered by collection, iterative scan: the layout before issue
  19), then through the index of its own that the worker builds above
  SEARCH_DEDICATED_INDEX_MIN_CHUNKS (build timed).
Each through the product's search service, 100 SciFact test claims, top_k 10; recall@10
by distance against the exact ranking at the product's ef_search. Target: hybrid p95
beside / alone <= 1.3 and recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("keyword", "semantic", "hybrid")


def run_set(size: int, target: int, args: argparse.Namespace, folder: str) -> dict[str, Any]:
    result = Path(folder) / f"{size}-{target}.json"
    command = [
        sys.executable,
        str(ROOT / "bench/_scale_set.py"),
        "--size",
        str(size),
        "--result",
        str(result),
        "--queries",
        str(args.queries),
    ]
    if target:
        command += ["--target", str(target)]
    command += ["--rebuild"] if args.rebuild else []
    command += ["--drop"] if args.drop else []
    subprocess.run(command, cwd=ROOT, check=True)
    report: dict[str, Any] = json.loads(result.read_text())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", type=int, default=20_000)
    parser.add_argument("--others", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/beside.json")
    parser.add_argument("--rebuild", action="store_true", help="rebuild complete sets too")
    parser.add_argument("--drop", action="store_true", help="drop the databases afterwards")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        alone = run_set(args.target, 0, args, folder)
        beside = run_set(args.others, args.target, args, folder)
    variants = {
        "alone": (alone["latency"], alone["hnsw_recall@10"]),
        "beside, shared index": (
            beside["target"]["shared"]["latency"],
            beside["target"]["shared"]["hnsw_recall@10"],
        ),
        "beside, own index": (
            beside["target"]["own"]["latency"],
            beside["target"]["own"]["hnsw_recall@10"],
        ),
    }
    report = {
        "target_chunks": args.target,
        "other_chunks": args.others,
        "own_index_build_seconds": beside["target"]["own_index_build_seconds"],
        # The big collection itself, searched alone in its scope (as bench/scale.py does).
        "others": {key: beside[key] for key in ("latency", "hnsw_recall@10", "build_seconds")},
        "variants": {
            name: {"latency": latency, "hnsw_recall@10": recall}
            for name, (latency, recall) in variants.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{args.target:,} chunks beside {args.others:,} others; own index built in "
        f"{report['own_index_build_seconds']} s\n"
    )
    print("| variant | mode | p50 ms | p95 ms | SQL p95 ms | p95 / alone | recall@10 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (latency, recall) in variants.items():
        for mode in MODES:
            row = latency[mode]
            ratio = row["p95_ms"] / alone["latency"][mode]["p95_ms"]
            print(
                f"| {name} | {mode} | {row['p50_ms']} | {row['p95_ms']} | {row['sql_p95_ms']}"
                f" | {ratio:.2f} | {recall} |"
            )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

"""Search latency and HNSW recall on synthetic collections of 10k, 100k, 1M chunks.

    .venv/bin/python bench/scale.py --sizes 10000 100000 1000000 [--queries 100]
        [--output bench/results/scale.json] [--chart bench/results/scale.png] [--rebuild]

Needs the SciFact collection that `manage.py evaluate --dataset ../shared/datasets/scifact`
ingests: the scale sets are built from its real chunks so that term statistics stay
realistic. Each synthetic chunk starts from a real chunk, swaps in a sentence from another
chunk, and resamples about a fifth of its words from the corpus' own unigram
distribution (rare terms stay rare; no abstract is simply repeated). Its vector is the
real chunk's embedding plus Gaussian noise, normalised. Queries are SciFact's test
claims; latency is measured through the same search service the API uses, with and
without the query embedding.

Each size is built and measured by bench/_scale_set.py in a process of its own, in a
database of its own (`<product database>_scale_<N>` on the same server): the product's
data is only read, and a small set is measured alone, not inside a table and HNSW index
ten times its size. Loading uses a bulk path (indexes dropped, rows loaded with their
BM25 weights and keyword statistics, indexes rebuilt once in parallel; phases timed, see
bench/_scale_set.py). A completely built set is reused by later runs (`--rebuild` builds
again); `--drop` removes the scale databases afterwards (a 1M set takes several GB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("keyword", "semantic", "hybrid")


def parse_sizes(values: list[str]) -> list[int]:
    """`10000 100000` and `10000,100000` alike."""
    return [int(part) for value in values for part in value.split(",") if part.strip()]


def chart(report: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(s) for s in report)
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in MODES:
        ax.plot(
            sizes,
            [report[str(s)]["latency"][mode]["sql_p95_ms"] for s in sizes],
            marker="o",
            label=f"{mode} p95 (SQL)",
        )
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("chunks")
    ax.set_ylabel("ms")
    ax.set_title("Search latency against corpus size")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["10000", "100000"])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/scale.json")
    parser.add_argument("--chart", type=Path, default=ROOT / "bench/results/scale.png")
    parser.add_argument("--batch", type=int, default=20_000, help="chunks per COPY/INSERT")
    parser.add_argument("--maintenance-work-mem", default="4GB")
    parser.add_argument("--parallel-workers", type=int, help="default: cores - 1")
    parser.add_argument("--rebuild", action="store_true", help="rebuild complete sets too")
    parser.add_argument("--drop", action="store_true", help="drop each scale database after use")
    args = parser.parse_args()
    sizes = parse_sizes(args.sizes)
    report: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            result = Path(folder) / f"{size}.json"
            command = [
                sys.executable,
                str(ROOT / "bench/_scale_set.py"),
                "--size",
                str(size),
                "--result",
                str(result),
                "--dataset",
                str(args.dataset),
                "--queries",
                str(args.queries),
                "--batch",
                str(args.batch),
                "--maintenance-work-mem",
                args.maintenance_work_mem,
            ]
            if args.parallel_workers is not None:
                command += ["--parallel-workers", str(args.parallel_workers)]
            if args.rebuild:
                command.append("--rebuild")
            if args.drop:
                command.append("--drop")
            subprocess.run(command, cwd=ROOT, check=True)
            report[str(size)] = json.loads(result.read_text())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'chunks':>10} {'build s':>9}  " + "  ".join(f"{m + ' p95':>14}" for m in MODES))
    for size in sizes:
        row = report[str(size)]
        print(
            f"{size:>10,} {row['build_seconds'].get('total', 0):>9.0f}  "
            + "  ".join(f"{row['latency'][m]['sql_p95_ms']:>11.1f} ms" for m in MODES)
        )
    chart(report, args.chart)
    print(f"wrote {args.output} and {args.chart}")


if __name__ == "__main__":
    main()

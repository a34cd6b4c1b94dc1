"""Chunk-size study (issue 17, point 5): nDCG@10 per chunk size x overlap, with bootstrap CIs.

    .venv/bin/python bench/chunk_study.py [--tokens 128,200,254] [--overlaps 0,30,60]
        [--modes keyword,semantic,hybrid] [--corpora scifact,pydoc]
        [--scifact ../shared/datasets/scifact] [--scifact-docs N] [--pydoc var/corpora/pydoc]
        [--pages N] [--limit N] [--draws 1000] [--output FILE.json]

Tuning halves only: SciFact's train split and the pydoc corpus's qrels/tune.tsv (never
SciFact test or pydoc report). For every (max tokens, overlap) each corpus is ingested once
through the real pipeline with the settings' chunking but for those two values
(`ingest_corpus(..., chunking=...)`; collections are keyed by the chunking fingerprint, so
a second run reuses them), and every judged query runs through the real search in each
mode. Reported per corpus, setting and mode: mean nDCG@10 with a 95% bootstrap interval
(queries resampled with replacement, `--draws` times, seeded) and the paired difference
from the settings' current chunking (the same resampled queries for both, so the interval
is of the difference).

Runs in a database of its own (`<product database>_chunk_study`, bench/benchdb.py,
migrated here): the product's collections are never touched. `--pages`, `--limit` and
`--scifact-docs` make a quick check; the real study is long (up to 9 ingestions of each
corpus), so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

from bench.benchdb import database_create, database_exists, use_database  # noqa: E402

# Only when run: a test importing this module keeps its own database.
DATABASE = use_database("chunk_study") if __name__ == "__main__" else ""
django.setup()

from django.core.files import File  # noqa: E402
from django.core.management import call_command  # noqa: E402

from documents.chunk_text import ChunkingConfig, chunking_settings_fingerprint  # noqa: E402
from documents.models import Collection, Document  # noqa: E402
from documents.pipeline import documents_process_pending  # noqa: E402
from documents.services import collection_create, document_upload  # noqa: E402
from search.evaluation import (  # noqa: E402
    BeirDataset,
    Variant,
    compute_metrics,
    ingest_corpus,
    load_beir,
    load_qrels,
    load_queries,
    resolve_qrels,
    run_variant,
)

PYDOC = ROOT / "bench" / "data" / "pydoc"
Qrels = dict[str, dict[str, int]]
Scores = dict[str, float]  # query id -> nDCG@10
MODES = ("keyword", "semantic", "hybrid")


@dataclass
class Corpus:
    """A tuning set: its queries, judgments (corpus-ids) and how to ingest it."""

    name: str
    queries: dict[str, str]
    qrels: Qrels
    ingest: Callable[[ChunkingConfig], Collection]


@dataclass
class SciFactSubset(BeirDataset):
    """A BEIR dataset whose corpus keeps only `keep` (all when None)."""

    keep: frozenset[str] | None = field(default=None)

    def corpus(self) -> Iterator[dict[str, str]]:
        for row in super().corpus():
            if self.keep is None or str(row["_id"]) in self.keep:
                yield row


def scifact_corpus(path: Path, *, docs: int | None, limit: int | None) -> Corpus:
    """SciFact train; `docs`: the judged abstracts plus seeded others up to that many."""
    dataset = load_beir(path, split="train")
    qrels = dict(list(dataset.qrels.items())[:limit]) if limit else dataset.qrels
    if docs:
        judged = {doc for judged in qrels.values() for doc in judged}
        others = sorted(
            str(row["_id"]) for row in dataset.corpus() if str(row["_id"]) not in judged
        )
        random.Random(17).shuffle(others)
        keep = frozenset(judged | set(others[: max(0, docs - len(judged))]))
        dataset = SciFactSubset(
            name=f"{dataset.name}-{len(keep)}docs",
            path=dataset.path,
            split="train",
            queries=dataset.queries,
            qrels=qrels,
            keep=keep,
        )
    queries = {qid: text for qid, text in dataset.queries.items() if qid in qrels}
    return Corpus(
        dataset.name, queries, qrels, lambda chunking: ingest_corpus(dataset, chunking=chunking)
    )


def pydoc_ingest(files: list[Path], chunking: ChunkingConfig) -> Collection:
    """The pages as `manage.py ingest` uploads them, into a collection of this chunking."""
    slug = f"pydoc-study-{len(files)}-{chunking_settings_fingerprint(chunking)[:8]}"
    collection = Collection.objects.filter(slug=slug).first() or collection_create(
        owner=None, name=slug, slug=slug
    )
    present = set(
        Document.objects.filter(collection=collection).values_list("source_name", flat=True)
    )
    for path in files:
        if path.name not in present:
            with path.open("rb") as handle:
                document_upload(
                    collection=collection,
                    user=None,
                    file=File(handle, name=path.name),
                    enqueue=False,
                )
    documents_process_pending(collection_id=collection.pk, chunking=chunking)
    return collection


def pydoc_corpus(folder: Path, *, pages: int | None, limit: int | None) -> Corpus:
    files = sorted(folder.glob("*.html"))[:pages]
    if not files:
        raise SystemExit(f"no pages in {folder}: run bench/data/pydoc/fetch.py first")
    names = {path.name for path in files}
    qrels: Qrels = {}
    for qid, judged in load_qrels(PYDOC / "qrels" / "tune.tsv").items():
        kept = {doc: grade for doc, grade in judged.items() if doc in names}
        if kept:  # with --pages, the judgments of the pages left out are dropped
            qrels[qid] = kept
    qrels = dict(list(qrels.items())[:limit]) if limit else qrels
    queries = {
        qid: text for qid, text in load_queries(PYDOC / "queries.jsonl").items() if qid in qrels
    }
    return Corpus(
        f"pydoc-{len(files)}pages", queries, qrels, lambda chunking: pydoc_ingest(files, chunking)
    )


def per_query_ndcg(run: dict[str, dict[str, float]], qrels: Qrels) -> dict[str, float]:
    """nDCG@10 of each judged query, by the product's metrics code."""
    return {
        qid: compute_metrics({qid: run.get(qid, {})}, {qid: judged})["ndcg@10"]
        for qid, judged in qrels.items()
    }


def bootstrap(
    values: dict[str, float],
    *,
    draws: int,
    seed: int,
    reference: dict[str, float] | None = None,
) -> tuple[float, float, float]:
    """Mean and 95% percentile interval over query resamples; with `reference`, of the
    paired difference values - reference (the same resampled queries for both)."""
    qids = sorted(values)
    diffs = np.array([values[q] - (reference[q] if reference else 0.0) for q in qids])
    picks = np.random.default_rng(seed).integers(0, len(diffs), size=(draws, len(diffs)))
    low, high = np.percentile(diffs[picks].mean(axis=1), [2.5, 97.5])
    return float(diffs.mean()), float(low), float(high)


def measure(corpus: Corpus, chunking: ChunkingConfig, modes: list[str]) -> dict[str, Scores]:
    """Per-mode per-query nDCG@10 of one corpus under one chunking."""
    print(f"{corpus.name}: {chunking.max_tokens} tokens, overlap {chunking.overlap_tokens}")
    collection = corpus.ingest(chunking)
    qrels = resolve_qrels(collection, corpus.qrels)
    queries = {qid: text for qid, text in corpus.queries.items() if qid in qrels}
    result = {}
    for mode in modes:
        run, _, _ = run_variant(Variant(mode, mode), collection=collection, queries=queries)
        result[mode] = per_query_ndcg(run, qrels)
    return result


def summarize(
    scores: dict[tuple[str, int, int], dict[str, Scores]],
    *,
    reference: tuple[int, int],
    draws: int,
) -> list[dict[str, Any]]:
    """One row per corpus, setting and mode: mean, CI, and the paired difference from
    `reference` (max tokens, overlap) when it was measured too."""
    rows = []
    for (name, tokens, overlap), by_mode in scores.items():
        base = scores.get((name, *reference))
        for mode, values in by_mode.items():
            mean, low, high = bootstrap(values, draws=draws, seed=17)
            row: dict[str, Any] = {
                "corpus": name,
                "max_tokens": tokens,
                "overlap": overlap,
                "mode": mode,
                "queries": len(values),
                "ndcg@10": round(mean, 4),
                "ci95": [round(low, 4), round(high, 4)],
            }
            if base is not None and (tokens, overlap) != reference:
                diff, dlow, dhigh = bootstrap(values, draws=draws, seed=17, reference=base[mode])
                row["diff_vs_current"] = [round(diff, 4), round(dlow, 4), round(dhigh, 4)]
            rows.append(row)
    return rows


def print_rows(rows: list[dict[str, Any]], reference: tuple[int, int]) -> None:
    print(f"current chunking: {reference[0]} tokens, overlap {reference[1]}")
    print(
        f"{'corpus':<22}{'tokens':>7}{'overlap':>8} {'mode':<9}{'nDCG@10':>8}  95% CI"
        f"{'':<10}diff vs current [95% CI]"
    )
    for row in sorted(rows, key=lambda r: (r["corpus"], r["mode"], r["max_tokens"], r["overlap"])):
        diff = row.get("diff_vs_current")
        shown = f"{diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]" if diff else ""
        print(
            f"{row['corpus']:<22}{row['max_tokens']:>7}{row['overlap']:>8} {row['mode']:<9}"
            f"{row['ndcg@10']:>8.4f}  [{row['ci95'][0]:.4f}, {row['ci95'][1]:.4f}]  {shown}"
        )


def integers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=integers, default=[128, 200, 254])
    parser.add_argument("--overlaps", type=integers, default=[0, 30, 60])
    parser.add_argument("--modes", default="keyword,semantic,hybrid")
    parser.add_argument("--corpora", default="scifact,pydoc")
    parser.add_argument("--scifact", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--scifact-docs", type=int, help="Judged abstracts + others up to N.")
    parser.add_argument("--pydoc", type=Path, default=ROOT / "var" / "corpora" / "pydoc")
    parser.add_argument("--pages", type=int, help="Only the first N pydoc pages.")
    parser.add_argument("--limit", type=int, help="Only the first N judged queries per corpus.")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--output", type=Path, help="Write the rows as JSON here.")
    args = parser.parse_args(argv)
    grid = list(itertools.product(args.tokens, args.overlaps))
    for tokens, overlap in grid:
        if overlap * 2 >= tokens:
            parser.error(f"overlap {overlap} must be under half of {tokens} tokens")
    wanted = args.corpora.split(",")
    modes = args.modes.split(",")
    if not set(wanted) <= {"scifact", "pydoc"} or not set(modes) <= set(MODES):
        parser.error(f"--corpora: scifact, pydoc; --modes: {', '.join(MODES)}")
    if not DATABASE:
        raise SystemExit("run bench/chunk_study.py as a script (it uses a database of its own)")
    if not database_exists(DATABASE):
        database_create(DATABASE)
    call_command("migrate", verbosity=0, interactive=False)
    corpora = []
    if "scifact" in wanted:
        corpora.append(scifact_corpus(args.scifact, docs=args.scifact_docs, limit=args.limit))
    if "pydoc" in wanted:
        corpora.append(pydoc_corpus(args.pydoc, pages=args.pages, limit=args.limit))
    current = ChunkingConfig.from_settings()
    scores = {
        (corpus.name, tokens, overlap): measure(
            corpus, replace(current, max_tokens=tokens, overlap_tokens=overlap), modes
        )
        for tokens, overlap in grid
        for corpus in corpora
    }
    reference = (current.max_tokens, current.overlap_tokens)
    rows = summarize(scores, reference=reference, draws=args.draws)
    print_rows(rows, reference)
    if args.output:
        args.output.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()

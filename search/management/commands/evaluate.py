"""manage.py evaluate: retrieval quality on a BEIR dataset or on your own collection."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents.models import Collection
from search.evaluation import (
    DatasetError,
    Variant,
    default_variants,
    evaluate,
    ingest_corpus,
    load_beir,
    load_qrels,
    load_queries,
    resolve_qrels,
)

# Each combination runs every query through the real search; keep the grid small.
SWEEP_GRID: dict[str, list[Any]] = {
    "rrf_k": [10, 30, 60, 100],
    "weights": [(1.0, 1.0), (1.5, 1.0), (1.0, 1.5), (2.0, 1.0)],  # keyword, semantic
    "depth": [100, 200],  # candidates per leg
}
MMR_LAMBDAS = [None, 0.5, 0.7, 0.9]


def sweep_options(combo: dict[str, Any]) -> dict[str, Any]:
    keyword_weight, semantic_weight = combo["weights"]
    return {
        "rrf_k": combo["rrf_k"],
        "keyword_weight": keyword_weight,
        "semantic_weight": semantic_weight,
        "keyword_depth": combo["depth"],
        "semantic_depth": combo["depth"],
    }


class Command(BaseCommand):
    help = (
        "Evaluate retrieval (nDCG@10, Recall@10/100, MRR@10, latency) per mode, on a "
        "BEIR-format dataset (--dataset DIR --split NAME) or on an ingested collection "
        "(--collection SLUG --queries FILE.jsonl --qrels FILE.tsv). Acts with full access."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", type=Path, help="BEIR dataset folder.")
        parser.add_argument("--split", default="test")
        parser.add_argument("--collection", help="Evaluate this ingested collection (slug).")
        parser.add_argument("--queries", type=Path, help="queries .jsonl (_id, text)")
        parser.add_argument("--qrels", type=Path, help="qrels .tsv (query-id corpus-id score)")
        parser.add_argument("--modes", help="Comma-separated variant names to run.")
        parser.add_argument("--output", type=Path, help="Write the metrics as JSON here.")
        parser.add_argument("--chart", type=Path, help="Write a PNG chart here.")
        parser.add_argument("--limit", type=int, help="Only the first N queries (quick runs).")
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="Grid-search the fusion parameters and MMR lambda; refuses the test split.",
        )
        parser.add_argument(
            "--grid",
            help='Sweep grid as JSON, e.g. {"rrf_k": [20, 60], "weights": [[1, 1], [2, 1]], '
            '"depth": [100]} (weights are keyword, semantic).',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["verbosity"] < 1
        try:
            collection, queries, qrels = self._load(options, quiet=quiet)
        except DatasetError as exc:
            raise CommandError(str(exc)) from exc
        if options["limit"]:
            keep = list(qrels)[: options["limit"]]
            qrels = {qid: qrels[qid] for qid in keep}
        if options["sweep"]:
            grid = dict(SWEEP_GRID)
            if options["grid"]:
                try:
                    grid.update(json.loads(options["grid"]))
                except (ValueError, TypeError) as exc:
                    raise CommandError(f"--grid is not a JSON object: {exc}") from exc
            self._sweep(collection, queries, qrels, grid=grid, quiet=quiet)
            return
        variants = default_variants()
        if options["modes"]:
            wanted = options["modes"].split(",")
            variants = [v for v in variants if v.name in wanted]
            if not variants:
                raise CommandError(f"no variant named {options['modes']!r}")
        with tqdm(total=len(qrels) * len(variants), desc="querying", disable=quiet) as bar:
            report = evaluate(
                collection=collection,
                queries=queries,
                qrels=qrels,
                variants=variants,
                progress=bar.update,
            )
        self._print_table(report)
        if options["output"]:
            options["output"].write_text(json.dumps(report, indent=2) + "\n")
            self.stdout.write(f"wrote {options['output']}")
        if options["chart"]:
            self._chart(report, options["chart"])
            self.stdout.write(f"wrote {options['chart']}")

    def _load(
        self, options: dict[str, Any], *, quiet: bool
    ) -> tuple[Collection, dict[str, str], dict[str, dict[str, int]]]:
        if options["dataset"]:
            if options["sweep"] and options["split"] == "test":
                raise CommandError(
                    "--sweep tunes parameters: use the train split, never test "
                    "(report test only with the chosen settings)"
                )
            dataset = load_beir(options["dataset"], split=options["split"])
            with tqdm(desc="ingesting", unit="doc", disable=quiet) as bar:
                collection = ingest_corpus(dataset, progress=bar.update)
            qrels = resolve_qrels(collection, dataset.qrels)
            return collection, dataset.queries, qrels
        if not (options["collection"] and options["queries"] and options["qrels"]):
            raise CommandError(
                "give --dataset DIR [--split NAME], or --collection SLUG --queries FILE "
                "--qrels FILE"
            )
        collection = Collection.objects.filter(slug=options["collection"]).first()
        if collection is None:
            raise CommandError(f"no collection {options['collection']!r}")
        queries = load_queries(options["queries"])
        raw_qrels = load_qrels(options["qrels"])
        unknown = sorted(set(raw_qrels) - set(queries))
        if unknown:
            raise DatasetError(f"qrels name unknown query id(s), e.g. {unknown[0]!r}")
        return collection, queries, resolve_qrels(collection, raw_qrels)

    def _print_table(self, report: dict[str, dict[str, Any]]) -> None:
        header = (
            f"{'variant':<16}{'nDCG@10':>9}{'R@10':>8}{'R@100':>8}{'MRR@10':>8}"
            f"{'p50 ms':>9}{'p95 ms':>9}"
        )
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for name, row in report.items():
            latency = row["latency_ms"]
            self.stdout.write(
                f"{name:<16}{row['ndcg@10']:>9.4f}{row['recall@10']:>8.4f}"
                f"{row['recall@100']:>8.4f}{row['mrr@10']:>8.4f}"
                f"{latency['p50']:>9.1f}{latency['p95']:>9.1f}"
            )

    def _chart(self, report: dict[str, dict[str, Any]], path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = list(report)
        fig, (quality, speed) = plt.subplots(1, 2, figsize=(11, 4))
        width = 0.2
        for i, metric in enumerate(["ndcg@10", "recall@10", "recall@100", "mrr@10"]):
            quality.bar(
                [x + i * width for x in range(len(names))],
                [report[n][metric] for n in names],
                width,
                label=metric,
            )
        quality.set_xticks([x + 1.5 * width for x in range(len(names))], names, rotation=20)
        quality.set_ylim(0, 1)
        quality.set_title("Quality")
        quality.legend(fontsize=8)
        speed.bar(names, [report[n]["latency_ms"]["p50"] for n in names], label="p50")
        speed.bar(
            names,
            [report[n]["latency_ms"]["p95"] - report[n]["latency_ms"]["p50"] for n in names],
            bottom=[report[n]["latency_ms"]["p50"] for n in names],
            label="p95",
        )
        speed.set_ylabel("ms per query")
        speed.set_title("Latency")
        speed.tick_params(axis="x", rotation=20)
        speed.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    def _sweep(
        self,
        collection: Collection,
        queries: dict[str, str],
        qrels: dict[str, dict[str, int]],
        *,
        grid: dict[str, list[Any]],
        quiet: bool,
    ) -> None:
        combos = [
            sweep_options(dict(zip(grid, values, strict=True)))
            for values in itertools.product(*grid.values())
        ]
        results: list[tuple[float, dict[str, Any]]] = []
        with tqdm(total=len(combos) + len(MMR_LAMBDAS), desc="sweeping", disable=quiet) as bar:
            for combo in combos:
                report = evaluate(
                    collection=collection,
                    queries=queries,
                    qrels=qrels,
                    variants=[Variant("hybrid", "hybrid", combo)],
                )
                results.append((report["hybrid"]["ndcg@10"], combo))
                bar.update(1)
            best_score, best = max(results, key=lambda item: item[0])
            for lambda_ in MMR_LAMBDAS:
                options = {**best, "mmr_lambda": lambda_}
                report = evaluate(
                    collection=collection,
                    queries=queries,
                    qrels=qrels,
                    variants=[Variant("hybrid", "hybrid", options)],
                )
                results.append((report["hybrid"]["ndcg@10"], options))
                bar.update(1)
        results.sort(key=lambda item: -item[0])
        self.stdout.write("best settings by nDCG@10:")
        for score, combo in results[:10]:
            self.stdout.write(f"  {score:.4f}  {json.dumps(combo)}")
        score, combo = results[0]
        self.stdout.write(f"BEST {score:.4f} {json.dumps(combo)}")

"""manage.py evaluate: retrieval quality on a BEIR dataset or on your own collection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents.models import Collection
from documents.services import collection_update
from search.evaluation import (
    ALPHA,
    HEADER,
    SWEEP_GRID,
    BeirDataset,
    DatasetError,
    RerankFailed,
    SweepTarget,
    Variant,
    best_alpha,
    default_variants,
    evaluate,
    header_values,
    ingest_corpus,
    load_beir,
    load_qrels,
    load_queries,
    rerank_variants,
    resolve_qrels,
    sweep,
    sweep_size,
)
from search.rerank import rerank_configured, reranker_name


class Command(BaseCommand):
    help = (
        "Evaluate retrieval (nDCG@10, Recall@10/100, MRR@10, latency) per mode, on a "
        "BEIR-format dataset (--dataset DIR --split NAME) or on an ingested collection "
        "with your own judgments (--collection SLUG --queries FILE.jsonl --qrels FILE.tsv). "
        "A BEIR dataset is a folder with corpus.jsonl ({_id, title, text} per line), "
        "queries.jsonl or queries_<split>.jsonl ({_id, text}) and qrels/<split>.tsv "
        "(query-id, corpus-id, score: 1 relevant, 2 highly relevant). Acts with full access."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dataset",
            type=Path,
            help="A BEIR-format dataset folder; its corpus is ingested into a collection "
            "of its own (reused while the model and chunk settings stay the same).",
        )
        parser.add_argument(
            "--split",
            default="test",
            help="Which judgments of the dataset to score: the name of a file "
            "qrels/<split>.tsv, usually train, dev or test (default: test). Tune on train "
            "(--sweep refuses test), report test.",
        )
        parser.add_argument(
            "--collection",
            help="Evaluate this ingested collection (slug) with --queries and --qrels.",
        )
        parser.add_argument(
            "--queries", type=Path, help='Queries, one JSON per line: {"_id": "q1", "text": "..."}'
        )
        parser.add_argument(
            "--qrels",
            type=Path,
            help="Judgments, tab-separated lines: query-id, corpus-id, score. With "
            "--collection the corpus-id is a document's metadata `id` or its file name.",
        )
        parser.add_argument(
            "--judgments",
            help="Evaluate a judgment set of the admin (its name) on its collection, in "
            "the three modes, and keep the run (its chart and alerts are in the admin). "
            "With --sweep: tune on it instead (nothing is kept unless --save-alpha).",
        )
        parser.add_argument(
            "--rerank",
            action="store_true",
            help="Also run hybrid_rerank and semantic_rerank: the same searches reordered "
            "by the configured reranker (RERANK_BACKEND), to compare with the fused order.",
        )
        parser.add_argument(
            "--rerank-depth",
            type=int,
            help="Chunks the reranker reads per query (default RERANK_DEPTH).",
        )
        parser.add_argument("--modes", help="Comma-separated variant names to run.")
        parser.add_argument("--output", type=Path, help="Write the metrics as JSON here.")
        parser.add_argument("--chart", type=Path, help="Write a PNG chart here.")
        parser.add_argument("--limit", type=int, help="Only the first N queries (quick runs).")
        parser.add_argument(
            "--sweep",
            action="store_true",
            help="Grid-search the fusion parameters, the contextual chunk header (one "
            "ingestion per setting) and MMR lambda; refuses the test split.",
        )
        parser.add_argument(
            "--grid",
            help='Sweep grid as JSON, e.g. {"rrf_k": [20, 60], "weights": [[1, 1], [2, 1]], '
            '"depth": [100], "context_header": ["on", "off"]} (weights are keyword, '
            "semantic); keys left out keep their defaults.",
        )
        parser.add_argument(
            "--save-alpha",
            action="store_true",
            help="With --sweep: save the best score-fusion alpha (at the default depths) as "
            "the collection's own, used by its hybrid searches that do not give one. With "
            "--dataset, the collection of the configured header setting gets it, so a later "
            "evaluate --split test reports it.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        quiet = options["verbosity"] < 1
        if options["judgments"] and not options["sweep"]:
            self._judgments(options, quiet=quiet)
            return
        if options["sweep"]:
            self._sweep(options, quiet=quiet)
            return
        if options["save_alpha"]:
            raise CommandError("--save-alpha saves what a --sweep finds: add --sweep")
        try:
            collection, queries, qrels = self._load(options, quiet=quiet)
        except DatasetError as exc:
            raise CommandError(str(exc)) from exc
        qrels = self._limit(qrels, options)
        variants = default_variants() + self._rerank_variants(options)
        if options["modes"]:
            wanted = options["modes"].split(",")
            variants = [v for v in variants if v.name in wanted]
            if not variants:
                raise CommandError(f"no variant named {options['modes']!r}")
        with tqdm(total=len(qrels) * len(variants), desc="querying", disable=quiet) as bar:
            try:
                report = evaluate(
                    collection=collection,
                    queries=queries,
                    qrels=qrels,
                    variants=variants,
                    progress=bar.update,
                )
            except RerankFailed as exc:
                raise CommandError(f"reranking failed in {exc}") from exc
        self._print_table(report)
        if options["output"]:
            options["output"].write_text(json.dumps(report, indent=2) + "\n")
            self.stdout.write(f"wrote {options['output']}")
        if options["chart"]:
            self._chart(report, options["chart"])
            self.stdout.write(f"wrote {options['chart']}")

    def _judgments(self, options: dict[str, Any], *, quiet: bool) -> None:
        from insights.evaluation import evaluation_run, evaluation_variants
        from insights.models import JudgmentSet

        judgment_set = JudgmentSet.objects.filter(name=options["judgments"]).first()
        if judgment_set is None:
            raise CommandError(f"no judgment set named {options['judgments']!r}")
        variants = evaluation_variants(options["modes"].split(",") if options["modes"] else None)
        if not variants:
            raise CommandError(f"no variant named {options['modes']!r}")
        with tqdm(desc="querying", disable=quiet) as bar:
            run = evaluation_run(judgment_set=judgment_set, variants=variants, progress=bar.update)
        if run.status == run.Status.FAILED:
            raise CommandError(run.error)
        self._print_table(run.metrics)
        if run.alert:
            self.stderr.write(f"ALERT: {run.alert}")

    def _rerank_variants(self, options: dict[str, Any]) -> list[Variant]:
        if not options["rerank"]:
            return []
        if not rerank_configured():
            raise CommandError("--rerank: reranking is not configured (set RERANK_BACKEND)")
        depth = options["rerank_depth"]
        if depth is not None and not 1 <= depth <= settings.RERANK_MAX_DEPTH:
            raise CommandError(f"--rerank-depth must be 1..{settings.RERANK_MAX_DEPTH}")
        self.stdout.write(f"reranker: {reranker_name()}")
        return rerank_variants(depth)

    @staticmethod
    def _limit(
        qrels: dict[str, dict[str, int]], options: dict[str, Any]
    ) -> dict[str, dict[str, int]]:
        if not options["limit"]:
            return qrels
        return {qid: qrels[qid] for qid in list(qrels)[: options["limit"]]}

    def _dataset(self, options: dict[str, Any]) -> BeirDataset | None:
        if not options["dataset"]:
            own = options["collection"] and options["queries"] and options["qrels"]
            if not (own or options["judgments"]):
                raise CommandError(
                    "give --dataset DIR [--split NAME], or --collection SLUG --queries FILE "
                    "--qrels FILE"
                )
            return None
        if options["sweep"] and options["split"] == "test":
            raise CommandError(
                "--sweep tunes parameters: use the train split, never test "
                "(report test only with the chosen settings)"
            )
        return load_beir(options["dataset"], split=options["split"])

    def _ingest(
        self, dataset: BeirDataset, *, quiet: bool, context_header: bool | None = None
    ) -> tuple[Collection, dict[str, dict[str, int]]]:
        label = {None: "", True: " (header on)", False: " (header off)"}[context_header]
        with tqdm(desc=f"ingesting{label}", unit="doc", disable=quiet) as bar:
            collection = ingest_corpus(dataset, progress=bar.update, context_header=context_header)
        return collection, resolve_qrels(collection, dataset.qrels)

    def _load(
        self, options: dict[str, Any], *, quiet: bool
    ) -> tuple[Collection, dict[str, str], dict[str, dict[str, int]]]:
        dataset = self._dataset(options)
        if dataset is not None:
            collection, qrels = self._ingest(dataset, quiet=quiet)
            return collection, dataset.queries, qrels
        if options["judgments"]:  # a judgment set of the admin (--sweep reads it here)
            from insights.judgments import JudgmentError, judgment_set_load

            try:
                loaded = judgment_set_load(name=options["judgments"])
            except JudgmentError as exc:
                raise CommandError(str(exc)) from exc
            return loaded.collection, loaded.queries, loaded.qrels
        found = Collection.objects.filter(slug=options["collection"]).first()
        if found is None:
            raise CommandError(f"no collection {options['collection']!r}")
        collection = found
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

    def _sweep(self, options: dict[str, Any], *, quiet: bool) -> None:
        try:
            given = json.loads(options["grid"]) if options["grid"] else {}
        except ValueError as exc:
            raise CommandError(f"--grid is not valid JSON: {exc}") from exc
        if not isinstance(given, dict) or not all(isinstance(v, list) for v in given.values()):
            raise CommandError("--grid must be a JSON object of lists")
        unknown = sorted(set(given) - set(SWEEP_GRID))
        if unknown:
            raise CommandError(
                f"--grid: unknown key(s) {', '.join(unknown)}; known: {', '.join(SWEEP_GRID)}"
            )
        grid: dict[str, list[Any]] = {**SWEEP_GRID, **given}
        # alpha may be empty: no score fusion in the sweep, RRF only.
        empty = [key for key, values in grid.items() if not values and key != "alpha"]
        if empty:
            raise CommandError(f"--grid: {', '.join(empty)} needs at least one value")
        try:
            headers = header_values(grid.pop(HEADER))
            if options["save_alpha"]:
                self._check_save_alpha(grid, headers)
            dataset = self._dataset(options)
            if dataset is None:
                # A user's collection is evaluated as it was ingested.
                if HEADER in given:
                    raise CommandError(
                        f"{HEADER} needs one ingestion per setting: sweep it with --dataset"
                    )
                collection, queries, qrels = self._load(options, quiet=quiet)
                targets = [SweepTarget(collection, self._limit(qrels, options))]
                self.stdout.write(f"{HEADER} not varied: --collection is used as ingested")
            else:
                queries = dataset.queries
                targets = []
                for header in headers:
                    collection, qrels = self._ingest(
                        dataset, quiet=quiet, context_header=header == "on"
                    )
                    targets.append(SweepTarget(collection, self._limit(qrels, options), header))
        except (DatasetError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        with tqdm(total=sweep_size(grid, len(targets)), desc="sweeping", disable=quiet) as bar:
            results = sweep(targets=targets, queries=queries, grid=grid, progress=bar.update)
        self.stdout.write("best settings by nDCG@10:")
        for score, setting in results[:10]:
            self.stdout.write(f"  {score:.4f}  {json.dumps(setting)}")
        score, setting = results[0]
        self.stdout.write(f"BEST {score:.4f} {json.dumps(setting)}")
        if options["save_alpha"]:
            self._save_alpha(results, targets)

    @staticmethod
    def _check_save_alpha(grid: dict[str, list[Any]], headers: list[str]) -> None:
        """Before sweeping: the grid must try what a saved alpha is used with."""
        if not grid[ALPHA]:
            raise CommandError("--save-alpha: the grid tries no alpha (score fusion)")
        depth = settings.SEARCH_DEFAULTS["semantic_depth"]
        if settings.SEARCH_DEFAULTS["keyword_depth"] != depth or depth not in grid["depth"]:
            raise CommandError(
                f"--save-alpha: the grid's depth must include the search's default ({depth})"
            )
        shipped = _shipped_header()
        if shipped not in headers:  # (a --collection sweep ignores the header)
            raise CommandError(
                f"--save-alpha: the grid's {HEADER} must include the configured one ({shipped})"
            )

    def _save_alpha(
        self, results: list[tuple[float, dict[str, Any]]], targets: list[SweepTarget]
    ) -> None:
        """The best alpha becomes the collection's own: with --dataset, the collection of
        the configured header, which a later `evaluate --split test` reports."""
        target = next(t for t in targets if t.context_header in (None, _shipped_header()))
        found = best_alpha(results, header=target.context_header)
        assert found is not None  # _check_save_alpha made sure the sweep tried one
        score, alpha = found
        collection_update(collection=target.collection, search_alpha=alpha)
        self.stdout.write(
            f"saved alpha {alpha:g} for collection {target.collection.slug!r} "
            f"(hybrid nDCG@10 {score:.4f} on these queries)"
        )


def _shipped_header() -> str:
    return "on" if settings.CHUNK_CONTEXT_HEADER else "off"

"""The plain prototype of issue 17, to compare the product's retrieval against.

    .venv/bin/python bench/window_baseline.py [--corpus var/corpora/pydoc]
        [--queries bench/data/pydoc/queries.jsonl] [--qrels bench/data/pydoc/qrels/report.tsv]
        [--window 200] [--overlap 40] [--pages N] [--limit N] [--output FILE.json]

Every file of the corpus folder goes through the product's extraction
(documents.extraction.extract, so only the chunking differs), then, with no other
cleverness:
- windows of `--window` model tokens (documents/tokenizer.py) every `window - overlap`
  tokens over the extracted text, the page title prefixed on a line of its own;
- semantic: the product's embedder (documents.embedding.embed_texts / embed_query), exact
  cosine over all windows;
- keyword: BM25 (k1 0.9, b 0.4) over lower-cased words of the same windows;
- hybrid: reciprocal rank fusion (k 60) of the two legs' top 300 windows.
A page's score is its best window's. Scored with the product's metrics code
(search/evaluation/_metrics.py) against qrels whose corpus-ids are the file names; prints
nDCG@10, Recall@10 and MRR@10 per mode. Window vectors are cached in
<VAR_DIR>/cache/window_baseline/ (keyed by the model, the backend and the windows' texts).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from documents.embedding import active_model_name, backend_name, embed_query, embed_texts  # noqa: E402
from documents.extraction import ExtractionError, extract  # noqa: E402
from documents.tokenizer import get_tokenizer  # noqa: E402
from search.evaluation import DatasetError, compute_metrics, load_qrels, load_queries  # noqa: E402

PYDOC = ROOT / "bench" / "data" / "pydoc"
LEG_DEPTH = 300  # windows per leg before fusion, as the evaluation's legs
DOCUMENT_DEPTH = 100  # pages ranked per query (Recall@100)
RRF_K = 60
BM25_K1, BM25_B = 0.9, 0.4
WORD = re.compile(r"\w+")

Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Window:
    page: str  # the file name: the qrels' corpus-id
    text: str  # title + "\n" + the window's span of the extracted text


def windows_of(text: str, title: str, page: str, *, size: int, overlap: int) -> list[Window]:
    """Spans of `size` tokens starting every `size - overlap` tokens; the last may be short."""
    offsets = get_tokenizer().encode(text, add_special_tokens=False).offsets
    if not offsets:
        return []
    stride = size - overlap
    windows = []
    for start in range(0, len(offsets), stride):
        end = min(start + size, len(offsets)) - 1
        span = text[offsets[start][0] : offsets[end][1]]
        windows.append(Window(page, f"{title}\n{span}" if title else span))
        if end == len(offsets) - 1:
            break
    return windows


def corpus_windows(folder: Path, *, size: int, overlap: int, pages: int | None) -> list[Window]:
    files = sorted(p for p in folder.iterdir() if p.is_file())[:pages]
    if not files:
        raise SystemExit(f"no files in {folder}: run bench/data/pydoc/fetch.py first")
    windows: list[Window] = []
    for path in files:
        try:
            extracted = extract(path.read_bytes(), filename=path.name)
        except ExtractionError as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        title = (extracted.title or "").strip()
        windows.extend(windows_of(extracted.text, title, path.name, size=size, overlap=overlap))
    return windows


def window_vectors(windows: list[Window]) -> np.ndarray:
    """The windows' embeddings, from the cache when the same windows were embedded before."""
    digest = hashlib.sha256(f"{active_model_name()}|{backend_name()}".encode())
    for window in windows:
        digest.update(window.text.encode() + b"\x1e")
    cache = Path(settings.VAR_DIR) / "cache" / "window_baseline"
    path = cache / f"{digest.hexdigest()[:24]}.npy"
    if path.is_file():
        return np.load(path)
    print(f"embedding {len(windows)} windows", file=sys.stderr, flush=True)
    vectors = embed_texts([window.text for window in windows]).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


class BM25:
    """Okapi BM25 over the windows, in memory."""

    def __init__(self, texts: list[str]) -> None:
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.lengths = np.zeros(len(texts), dtype=np.float64)
        for index, text in enumerate(texts):
            counts = Counter(words(text))
            self.lengths[index] = sum(counts.values())
            for term, count in counts.items():
                self.postings[term].append((index, count))
        self.average = float(self.lengths.mean()) if texts else 0.0

    def scores(self, query: str) -> np.ndarray:
        total = np.zeros(len(self.lengths), dtype=np.float64)
        n = len(self.lengths)
        for term in set(words(query)):
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            index = np.fromiter((i for i, _ in posting), dtype=np.int64)
            tf = np.fromiter((c for _, c in posting), dtype=np.float64)
            norm = BM25_K1 * (1 - BM25_B + BM25_B * self.lengths[index] / self.average)
            total[index] += idf * tf * (BM25_K1 + 1) / (tf + norm)
        return total


def top_windows(scores: np.ndarray, depth: int = LEG_DEPTH) -> list[int]:
    """Indices of the best `depth` windows with a positive score, best first."""
    depth = min(depth, len(scores))
    best = np.argpartition(-scores, depth - 1)[:depth]
    return [int(i) for i in best[np.argsort(-scores[best], kind="stable")] if scores[i] > 0]


def rrf(*rankings: list[int], k: int = RRF_K) -> list[int]:
    fused: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, index in enumerate(ranking, start=1):
            fused[index] += 1.0 / (k + rank)
    return sorted(fused, key=lambda index: -fused[index])


def pages_of(ranking: list[int], windows: list[Window]) -> dict[str, float]:
    """Pages in the order of their best window, as rank-based scores for trec_eval."""
    order: list[str] = []
    for index in ranking:
        page = windows[index].page
        if page not in order:
            order.append(page)
            if len(order) == DOCUMENT_DEPTH:
                break
    return {page: float(len(order) - rank) for rank, page in enumerate(order)}


def runs(queries: dict[str, str], windows: list[Window], vectors: np.ndarray) -> dict[str, Run]:
    bm25 = BM25([window.text for window in windows])
    result: dict[str, Run] = {"keyword": {}, "semantic": {}, "hybrid": {}}
    for qid, text in queries.items():
        keyword = top_windows(bm25.scores(text))
        semantic = top_windows(vectors @ embed_query(text).astype(np.float32) + 1.0)
        result["keyword"][qid] = pages_of(keyword, windows)
        result["semantic"][qid] = pages_of(semantic, windows)
        result["hybrid"][qid] = pages_of(rrf(keyword, semantic), windows)
    return result


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "var" / "corpora" / "pydoc")
    parser.add_argument("--queries", type=Path, default=PYDOC / "queries.jsonl")
    parser.add_argument("--qrels", type=Path, default=PYDOC / "qrels" / "report.tsv")
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=40)
    parser.add_argument("--pages", type=int, help="Only the first N files (a quick check).")
    parser.add_argument("--limit", type=int, help="Only the first N judged queries.")
    parser.add_argument("--output", type=Path, help="Write the metrics as JSON here.")
    args = parser.parse_args(argv)
    if not 0 <= args.overlap < args.window:
        parser.error("--overlap must be at least 0 and less than --window")
    windows = corpus_windows(args.corpus, size=args.window, overlap=args.overlap, pages=args.pages)
    try:
        qrels = load_qrels(args.qrels)
        all_queries = load_queries(args.queries)
    except DatasetError as exc:
        parser.error(str(exc))
    if args.pages:  # judgments of the pages left out are dropped, and queries left with none
        present = {window.page for window in windows}
        kept = {q: {p: g for p, g in judged.items() if p in present} for q, judged in qrels.items()}
        qrels = {qid: judged for qid, judged in kept.items() if judged}
    qrels = dict(list(qrels.items())[: args.limit]) if args.limit else qrels
    queries = {qid: text for qid, text in all_queries.items() if qid in qrels}
    vectors = window_vectors(windows)
    report = {
        mode: {key: round(value, 4) for key, value in compute_metrics(run, qrels).items()}
        for mode, run in runs(queries, windows, vectors).items()
    }
    pages = len({window.page for window in windows})
    print(
        f"{pages} pages, {len(windows)} windows of {args.window} tokens (overlap "
        f"{args.overlap}), {len(queries)} queries, qrels {args.qrels.name}"
    )
    print(f"{'mode':<10}{'nDCG@10':>9}{'R@10':>8}{'R@100':>8}{'MRR@10':>8}")
    for mode, metrics in report.items():
        print(
            f"{mode:<10}{metrics['ndcg@10']:>9.4f}{metrics['recall@10']:>8.4f}"
            f"{metrics['recall@100']:>8.4f}{metrics['mrr@10']:>8.4f}"
        )
    if args.output:
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()

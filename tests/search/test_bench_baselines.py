"""bench/window_baseline.py (issue 17's plain prototype) and bench/chunk_study.py: windows,
BM25, fusion and bootstrap intervals on inputs whose answers are known, and an ingestion
per chunking through the real pipeline."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from bench import chunk_study, window_baseline
from documents.chunk_text import ChunkingConfig
from documents.models import Chunk, Document
from documents.tokenizer import count_tokens
from search.evaluation import compute_metrics, ingest_corpus, load_beir


def test_windows_have_the_size_and_overlap_asked_and_cover_the_text() -> None:
    text = " ".join(f"word{i}" for i in range(60))  # several wordpieces per word
    windows = window_baseline.windows_of(text, "Title", "p.html", size=20, overlap=5)
    bodies = [w.text.removeprefix("Title\n") for w in windows]
    assert all(w.text.startswith("Title\n") and w.page == "p.html" for w in windows)
    assert all(count_tokens(body) <= 20 for body in bodies)
    assert bodies[0].startswith("word0") and bodies[-1].endswith("word59")
    # Consecutive windows share their edge: the next starts 15 tokens after this one.
    assert all(count_tokens(a) == 20 for a in bodies[:-1])
    assert bodies[1].split()[0] in bodies[0]
    assert window_baseline.windows_of("", "T", "p", size=20, overlap=5) == []


def test_bm25_ranks_the_window_with_the_rare_query_term_first() -> None:
    index = window_baseline.BM25(
        ["the cat sat on the mat", "the dog sat", "a zebra on the mat", "the the the"]
    )
    scores = index.scores("zebra mat")
    assert window_baseline.top_windows(scores) == [2, 0]  # no match, no rank
    assert index.scores("unknownword").max() == 0


def test_rrf_and_page_grouping() -> None:
    assert window_baseline.rrf([1, 2, 3], [3, 4])[0] == 3  # in both lists
    windows = [window_baseline.Window(page, "") for page in ["a", "b", "a", "c"]]
    assert window_baseline.pages_of([2, 0, 3, 1], windows) == {"a": 3.0, "c": 2.0, "b": 1.0}


def test_bootstrap_intervals_contain_the_mean_and_pair_the_queries() -> None:
    values = {f"q{i}": float(i % 2) for i in range(200)}
    mean, low, high = chunk_study.bootstrap(values, draws=500, seed=1)
    assert mean == pytest.approx(0.5) and low < 0.5 < high and high - low < 0.2
    # The same scores shifted by 0.1 on every query: the paired difference has no spread.
    shifted = {qid: value + 0.1 for qid, value in values.items()}
    diff, dlow, dhigh = chunk_study.bootstrap(shifted, draws=500, seed=1, reference=values)
    assert diff == dlow == dhigh == pytest.approx(0.1)
    constant = chunk_study.bootstrap({"a": 0.3, "b": 0.3}, draws=50, seed=1)
    assert constant == pytest.approx((0.3, 0.3, 0.3))


def test_per_query_ndcg_averages_to_the_evaluations_figure() -> None:
    qrels = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}, "q3": {"d": 1}}
    run = {"q1": {"b": 2.0, "a": 1.0}, "q2": {"c": 1.0}}  # q3 found nothing
    per_query = chunk_study.per_query_ndcg(run, qrels)
    assert per_query["q2"] == 1.0 and per_query["q3"] == 0.0
    assert statistics.fmean(per_query.values()) == pytest.approx(
        compute_metrics(run, qrels)["ndcg@10"]
    )


def _long_dataset(root: Path) -> Path:
    sentence = "Basalt lava flows cool into columns of dark volcanic rock near the coast. "
    corpus = [
        {"_id": "d1", "title": "Volcanoes", "text": sentence * 30},
        {"_id": "d2", "title": "Oceans", "text": "Salt water covers the planet. " * 40},
    ]
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(row) for row in corpus) + "\n")
    (root / "queries_train.jsonl").write_text(json.dumps({"_id": "q1", "text": "lava"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return root


def test_ingest_corpus_takes_the_chunking_to_ingest_with(db: None, tmp_path: Path) -> None:
    dataset = load_beir(_long_dataset(tmp_path / "tiny"), split="train")
    current = ChunkingConfig.from_settings()
    small = replace(current, max_tokens=48, overlap_tokens=0)
    default_collection = ingest_corpus(dataset)
    small_collection = ingest_corpus(dataset, chunking=small)
    assert small_collection.slug != default_collection.slug
    chunks = Chunk.objects.filter(document__collection=small_collection)
    default_chunks = Chunk.objects.filter(document__collection=default_collection)
    assert chunks.count() > default_chunks.count()
    assert (
        max(count_tokens(c.text) for c in chunks)
        <= 48
        < max(count_tokens(c.text) for c in default_chunks)
    )
    assert ingest_corpus(dataset, chunking=small) == small_collection  # reused, not redone
    assert chunks.count() == Chunk.objects.filter(document__collection=small_collection).count()


def test_the_study_ingests_pages_and_scores_them_per_chunking(db: None, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "library_lava.html").write_text(
        "<html><head><title>Lava</title></head><body><h1>Lava</h1>"
        + "<p>Basalt lava flows cool into columns of dark volcanic rock.</p>" * 20
        + "</body></html>"
    )
    (pages / "library_ocean.html").write_text(
        "<html><head><title>Ocean</title></head><body><h1>Ocean</h1>"
        + "<p>Salt water covers most of the planet and its tides.</p>" * 20
        + "</body></html>"
    )
    files = sorted(pages.glob("*.html"))
    chunking = replace(ChunkingConfig.from_settings(), max_tokens=64, overlap_tokens=0)
    collection = chunk_study.pydoc_ingest(files, chunking)
    documents = Document.objects.filter(collection=collection)
    assert sorted(documents.values_list("source_name", flat=True)) == [p.name for p in files]
    assert set(documents.values_list("status", flat=True)) == {Document.Status.READY}
    corpus = chunk_study.Corpus(
        "pages",
        {"q1": "volcanic basalt columns", "q2": "salt water tides"},
        {"q1": {"library_lava.html": 2}, "q2": {"library_ocean.html": 2}},
        lambda config: chunk_study.pydoc_ingest(files, config),
    )
    scores = chunk_study.measure(corpus, chunking, ["keyword", "semantic"])
    assert scores == {"keyword": {"q1": 1.0, "q2": 1.0}, "semantic": {"q1": 1.0, "q2": 1.0}}
    rows = chunk_study.summarize(
        {("pages", 64, 0): scores, ("pages", 200, 30): scores}, reference=(200, 30), draws=50
    )
    moved = [row for row in rows if row["max_tokens"] == 64]
    assert all(row["diff_vs_current"] == [0.0, 0.0, 0.0] for row in moved)
    assert all("diff_vs_current" not in row for row in rows if row["max_tokens"] == 200)

"""Retrieval evaluation: metrics, datasets, the evaluate command end to end, the sweep."""

from __future__ import annotations

import json
import math
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from search.evaluation import DatasetError, compute_metrics, load_beir


def test_metrics_match_values_computed_by_hand() -> None:
    qrels = {"q1": {"a": 1, "b": 1}, "q2": {"c": 2, "d": 1}}
    run = {
        "q1": {"x": 3.0, "a": 2.0, "y": 1.0},  # one of two relevant, at rank 2
        "q2": {"c": 2.0, "d": 1.0},  # both, in the ideal order
    }
    metrics = compute_metrics(run, qrels)
    # q1: DCG = 1/log2(3); IDCG = 1 + 1/log2(3). q2: perfect -> 1.
    ndcg_q1 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics["ndcg@10"] == pytest.approx((ndcg_q1 + 1.0) / 2, abs=1e-4)
    assert metrics["recall@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert metrics["mrr@10"] == pytest.approx((0.5 + 1.0) / 2)


def test_graded_judgments_count_as_graded() -> None:
    qrels = {"q": {"high": 2, "low": 1}}
    right = compute_metrics({"q": {"high": 2.0, "low": 1.0}}, qrels)["ndcg@10"]
    wrong = compute_metrics({"q": {"low": 2.0, "high": 1.0}}, qrels)["ndcg@10"]
    assert right == pytest.approx(1.0) and wrong < right


def test_queries_without_results_count_as_zero() -> None:
    metrics = compute_metrics({"q1": {"a": 1.0}}, {"q1": {"a": 1}, "q2": {"b": 1}})
    assert metrics["ndcg@10"] == pytest.approx(0.5)


def _dataset(root: Path, *, corpus: list[dict] | None = None) -> Path:
    corpus = corpus or [
        {"_id": "d1", "title": "Volcanoes", "text": "Lava and ash erupt from volcanoes."},
        {"_id": "d2", "title": "Oceans", "text": "Salt water covers most of the planet."},
        {"_id": "d3", "title": "Forests", "text": "Trees in forests store carbon."},
        {"_id": "d4", "title": "Deserts", "text": "Deserts receive very little rain."},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(row) for row in corpus) + "\n")
    queries = [
        {"_id": "q1", "text": "what erupts from a volcano"},
        {"_id": "q2", "text": "salt water ocean"},
        {"_id": "q3", "text": "trees storing carbon"},
    ]
    (root / "queries_train.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "queries_test.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n"
    (root / "qrels" / "train.tsv").write_text(qrels)
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def test_evaluate_end_to_end_on_a_small_dataset(db: None, tmp_path: Path) -> None:
    path = _dataset(tmp_path / "tiny")
    out = StringIO()
    output = tmp_path / "report.json"
    chart = tmp_path / "report.png"
    call_command(
        "evaluate",
        "--dataset",
        str(path),
        "--split",
        "test",
        "--output",
        str(output),
        "--chart",
        str(chart),
        stdout=out,
        verbosity=0,
    )
    report = json.loads(output.read_text())
    assert set(report) == {"keyword", "semantic", "semantic_exact", "hybrid", "hybrid_mmr"}
    for row in report.values():
        assert row["ndcg@10"] == pytest.approx(1.0)  # the right answers are obvious
        assert row["recall@100"] == pytest.approx(1.0)
        assert row["latency_ms"]["p50"] > 0 and row["latency_ms"]["p95"] >= row["latency_ms"]["p50"]
    assert "hybrid" in out.getvalue() and "nDCG@10" in out.getvalue()
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run reuses the ingested corpus instead of embedding it again.
    from documents.models import Document

    count = Document.objects.count()
    call_command(
        "evaluate",
        "--dataset",
        str(path),
        "--split",
        "test",
        "--modes",
        "keyword",
        stdout=StringIO(),
        verbosity=0,
    )
    assert Document.objects.count() == count == 4


def test_evaluate_a_users_own_collection(db: None, tmp_path: Path, ingest: Any) -> None:
    from tests.factories import CollectionFactory

    collection = CollectionFactory(slug="mine")
    ingest(
        collection,
        {
            "volcano.txt": "Lava and ash erupt from volcanoes.",
            "ocean.txt": "Salt water covers most of the planet.",
        },
    )
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        '{"_id": "1", "text": "lava eruption"}\n{"_id": "2", "text": "salt water"}\n'
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("1\tvolcano.txt\t2\n2\tocean.txt\t1\n")
    output = tmp_path / "out.json"
    call_command(
        "evaluate",
        "--collection",
        "mine",
        "--queries",
        str(queries),
        "--qrels",
        str(qrels),
        "--output",
        str(output),
        stdout=StringIO(),
        verbosity=0,
    )
    assert json.loads(output.read_text())["hybrid"]["ndcg@10"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda root: (root / "corpus.jsonl").unlink(), "missing file"),
        (
            lambda root: (root / "queries_test.jsonl").write_text(
                '{"_id": "q1", "text": "x"}\n{oops\n'
            ),
            "queries_test.jsonl:2: not valid JSON",
        ),
        (lambda root: (root / "qrels" / "test.tsv").write_text("q9\td1\t1\n"), "unknown query id"),
        (lambda root: (root / "qrels" / "test.tsv").write_text("q1\td1\tmany\n"), "not a number"),
    ],
)
def test_malformed_datasets_get_clear_errors(tmp_path: Path, break_it: Any, message: str) -> None:
    root = _dataset(tmp_path / "bad")
    break_it(root)
    with pytest.raises(DatasetError, match=message):
        load_beir(root, split="test")


def test_qrels_naming_unknown_corpus_ids_are_refused(db: None, tmp_path: Path) -> None:
    root = _dataset(tmp_path / "ids")
    (root / "qrels" / "test.tsv").write_text("q1\tnope\t1\n")
    with pytest.raises(CommandError, match="match no document"):
        call_command(
            "evaluate", "--dataset", str(root), "--split", "test", stdout=StringIO(), verbosity=0
        )


def test_sweep_refuses_the_test_split(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="never test"):
        call_command(
            "evaluate",
            "--dataset",
            str(_dataset(tmp_path / "s")),
            "--split",
            "test",
            "--sweep",
            stdout=StringIO(),
        )


def test_sweep_picks_the_known_best_setting(db: None, tmp_path: Path) -> None:
    """The queries mean music but name an invoice by its number: only the keyword leg
    finds the judged invoices, so keyword-only fusion must win over semantic-only."""
    corpus = [
        {"_id": f"inv{i}", "title": "", "text": f"Invoice {code} for office chairs."}
        for i, code in enumerate(["QX7731", "ZR4410", "KW9902"])
    ]
    corpus += [
        {"_id": f"m{i}", "title": "", "text": f"The orchestra performed symphony {i} by Mozart."}
        for i in range(8)
    ]
    root = _dataset(tmp_path / "sweep", corpus=corpus)
    queries = [
        {"_id": f"q{i}", "text": f"a melody about love {code}"}
        for i, code in enumerate(["QX7731", "ZR4410", "KW9902"])
    ]
    (root / "queries_train.jsonl").write_text("\n".join(json.dumps(q) for q in queries))
    (root / "qrels" / "train.tsv").write_text("".join(f"q{i}\tinv{i}\t1\n" for i in range(3)))
    out = StringIO()
    grid = {"rrf_k": [60], "weights": [[0.0, 1.0], [1.0, 0.0]], "depth": [50]}
    call_command(
        "evaluate",
        "--dataset",
        str(root),
        "--split",
        "train",
        "--sweep",
        "--grid",
        json.dumps(grid),
        stdout=out,
        verbosity=0,
    )
    score, best = out.getvalue().split("BEST ", 1)[1].split(" ", 1)
    assert json.loads(best)["keyword_weight"] == 1.0
    assert json.loads(best)["semantic_weight"] == 0.0
    assert float(score) == pytest.approx(1.0)
    # The losing setting is listed with a lower score.
    assert '"semantic_weight": 1.0' in out.getvalue().split("BEST")[0]

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
    assert set(report) == {
        "keyword",
        "semantic",
        "semantic_exact",
        "hybrid",
        "hybrid_rrf",
        "hybrid_score",
        "hybrid_mmr",
    }
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

    collection = CollectionFactory.create(slug="mine")
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


@pytest.mark.parametrize(
    ("source", "grid", "message"),
    [
        ("dataset", {"rrfk": [60]}, "unknown key"),
        ("dataset", {"context_header": ["maybe"]}, "on/off"),
        ("dataset", {"depth": []}, "at least one value"),
        ("collection", {"context_header": ["off"]}, "sweep it with --dataset"),
    ],
)
def test_sweep_refuses_grids_it_cannot_run(
    tmp_path: Path, source: str, grid: dict, message: str
) -> None:
    root = _dataset(tmp_path / "g")
    where = (
        ["--dataset", str(root), "--split", "train"]
        if source == "dataset"
        else [
            "--collection",
            "mine",
            "--queries",
            str(root / "queries_train.jsonl"),
            "--qrels",
            str(root / "qrels" / "train.tsv"),
        ]
    )
    with pytest.raises(CommandError, match=message):
        call_command("evaluate", *where, "--sweep", "--grid", json.dumps(grid), stdout=StringIO())


def test_sweep_picks_the_known_best_setting(db: None, tmp_path: Path, settings: Any) -> None:
    """The queries mean music but name an invoice by its number: only the keyword leg
    finds the judged invoices, so keyword-only fusion must win over semantic-only, with
    the contextual header on and off alike. Each header setting is ingested into its own
    collection, embedded with or without the header."""
    import numpy as np

    # fp32: the check below compares a vector made in a batch with one made alone, which
    # int8 (its activations quantized per batch) reproduces only to a cosine of ~0.99.
    settings.EMBEDDING_BACKEND = "torch"

    from documents.embedding import embed_texts
    from documents.models import Chunk, Collection

    corpus = [
        {"_id": f"inv{i}", "title": "Office supplies", "text": f"Invoice {code} for chairs."}
        for i, code in enumerate(["QX7731", "ZR4410", "KW9902"])
    ]
    corpus += [
        {
            "_id": f"m{i}",
            "title": "Concert programme",
            "text": f"The orchestra performed symphony {i} by Mozart.",
        }
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
    grid = {
        "rrf_k": [60],
        "weights": [[0.0, 1.0], [1.0, 0.0]],
        "depth": [50],
        "alpha": [],  # RRF only here; score fusion's grid is tested apart
        "context_header": ["on", "off"],
    }
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
    listing, best_line = out.getvalue().split("BEST ", 1)
    score, best = best_line.split(" ", 1)
    assert json.loads(best)["keyword_weight"] == 1.0
    assert json.loads(best)["semantic_weight"] == 0.0
    assert json.loads(best)["context_header"] in ("on", "off")
    assert float(score) == pytest.approx(1.0)
    # Every setting is listed with its header; the losing ones with a lower score.
    rows = [line.split(None, 1) for line in listing.splitlines()[1:]]
    settings_by_score = [(float(s), json.loads(setting)) for s, setting in rows]
    for header in ("on", "off"):
        assert any(
            setting["context_header"] == header and setting["keyword_weight"] == 1.0 and s == 1.0
            for s, setting in settings_by_score
        )
        assert any(
            setting["context_header"] == header and setting["semantic_weight"] == 1.0 and s < 1.0
            for s, setting in settings_by_score
        )
    # Two collections with the same chunks: only the "on" one embedded the title with them.
    collections = list(Collection.objects.filter(slug__startswith="beir-sweep-"))
    assert len(collections) == 2
    texts = {
        c.pk: dict(Chunk.objects.filter(collection=c).values_list("text", "embedding"))
        for c in collections
    }
    first, second = texts.values()
    assert set(first) == set(second)
    text = next(t for t in first if "QX7731" in t)
    bare = embed_texts([text])[0]
    similarity = sorted(float(np.dot(bare, np.array(t[text]))) for t in (first, second))
    assert similarity[1] == pytest.approx(1.0, abs=1e-4)  # header off: the text alone
    assert similarity[0] < 0.999  # header on: "Office supplies" in front of it


def test_the_evaluation_names_collections_by_the_pipelines_fingerprint(settings: Any) -> None:
    from documents.chunk_text import chunking_settings_fingerprint
    from search.evaluation import corpus_collection_slug

    slug = corpus_collection_slug("SciFact")
    assert slug == f"beir-scifact-{chunking_settings_fingerprint()[:8]}"
    settings.CHUNK_CONTEXT_HEADER = not settings.CHUNK_CONTEXT_HEADER
    assert corpus_collection_slug("SciFact") != slug


def test_the_evaluation_searches_with_the_configured_defaults_and_no_timeout(
    db: None, tmp_path: Path, settings: Any
) -> None:
    """`manage.py evaluate` used to ignore SEARCH_RRF_K; and its queries are measurements,
    not requests, so SEARCH_STATEMENT_TIMEOUT_MS does not stop them."""
    from search.evaluation import Variant, ingest_corpus, run_variant
    from search.retrieval import SearchParams

    settings.SEARCH_DEFAULTS = {**settings.SEARCH_DEFAULTS, "rrf_k": 7}
    assert SearchParams(query="x").rrf_k == 7
    collection = ingest_corpus(load_beir(_dataset(tmp_path / "tiny"), split="test"))
    settings.SEARCH_STATEMENT_TIMEOUT_MS = 1  # would stop every request's search
    run, _, _ = run_variant(
        Variant("hybrid"), collection=collection, queries={"q1": "what erupts from a volcano"}
    )
    scores = run["q1"]
    assert scores and max(scores.values()) == len(scores)


def test_the_readmes_own_judgments_example_runs_as_written(
    ingest: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README shows `evaluate --collection` with judgments a user writes by hand; its
    shell lines run here as written, in a folder of their own."""
    import re
    import shlex
    import subprocess

    from django.conf import settings

    from tests.factories import CollectionFactory

    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    section = readme.split("### Measuring retrieval quality", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    *setup, command = script.strip().splitlines()
    subprocess.run(["bash", "-c", "\n".join(setup)], cwd=tmp_path, check=True)
    ingest(
        CollectionFactory.create(slug="papers"),
        {
            "paper.txt": "Aspirin lowers the risk of heart attacks in people with heart disease.",
            "volcanoes.md": "# Volcanoes\n\nVolcanoes erupt when magma and gas rise.",
            "tides.txt": "Tides follow the moon and the sun.",
        },
    )
    args = shlex.split(command)
    assert args[:3] == ["python", "manage.py", "evaluate"]
    monkeypatch.chdir(tmp_path)
    out = StringIO()
    call_command(*args[2:], stdout=out)
    rows = {line.split()[0]: line.split() for line in out.getvalue().splitlines()[2:] if line}
    assert {"keyword", "semantic", "hybrid"} <= set(rows)
    assert float(rows["hybrid"][1]) == pytest.approx(1.0)  # nDCG@10: both found first


def test_an_unknown_split_names_the_splits_there_are(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "tiny")
    with pytest.raises(DatasetError, match=r"no split 'dev' .* has test"):
        load_beir(root, split="dev")


def test_the_sweep_tries_score_fusion_beside_rrf() -> None:
    from search.evaluation._sweep import _combos

    combos = _combos({"rrf_k": [60], "weights": [(1.0, 1.0)], "depth": [100], "alpha": [0.3, 0.7]})
    assert [c["fusion"] for c in combos] == ["rrf", "score", "score"]
    assert {c.get("alpha") for c in combos if c["fusion"] == "score"} == {0.3, 0.7}


@pytest.mark.parametrize(
    ("extra", "grid", "message"),
    [
        ([], {"alpha": []}, "tries no alpha"),
        ([], {"depth": [50]}, "must include the search's default"),
        ([], {"context_header": ["off"]}, "must include the configured one"),
    ],
)
def test_save_alpha_refuses_sweeps_that_cannot_tell_it(
    tmp_path: Path, extra: list[str], grid: dict, message: str
) -> None:
    root = _dataset(tmp_path / "g")
    args = ["--dataset", str(root), "--split", "train", "--sweep", "--save-alpha", *extra]
    with pytest.raises(CommandError, match=message):
        call_command("evaluate", *args, "--grid", json.dumps(grid), stdout=StringIO())
    with pytest.raises(CommandError, match="add --sweep"):
        call_command("evaluate", "--dataset", str(root), "--save-alpha", stdout=StringIO())


def test_a_sweep_saves_the_collections_alpha_and_evaluate_then_uses_it(
    db: None, tmp_path: Path, ingest: Any
) -> None:
    """The queries mean music but name an invoice by its number: keyword-only fusion
    (alpha 0) finds every judged invoice, semantic-only (alpha 1) the concerts. The sweep
    saves alpha 0 as the collection's own; a plain evaluate then scores with it."""
    from documents.models import Collection
    from tests.factories import CollectionFactory

    collection = CollectionFactory.create(slug="mine")
    codes = ["QX7731", "ZR4410", "KW9902"]
    ingest(
        collection,
        {
            **{f"inv{i}.txt": f"Invoice {code} for office chairs." for i, code in enumerate(codes)},
            **{f"m{i}.txt": f"The orchestra performed love symphony {i}." for i in range(6)},
        },
    )
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        "".join(
            json.dumps({"_id": f"q{i}", "text": f"a melody about love {code}"}) + "\n"
            for i, code in enumerate(codes)
        )
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("".join(f"q{i}\tinv{i}.txt\t1\n" for i in range(3)))
    where = ["--collection", "mine", "--queries", str(queries), "--qrels", str(qrels)]
    grid = {"rrf_k": [60], "weights": [[1.0, 1.0]], "depth": [200], "alpha": [0.0, 1.0]}
    out = StringIO()
    call_command(
        "evaluate", *where, "--sweep", "--save-alpha", "--grid", json.dumps(grid), stdout=out
    )
    assert "saved alpha 0 for collection 'mine' (hybrid nDCG@10 1.0000" in out.getvalue()
    collection = Collection.objects.get(slug="mine")
    assert collection.search_alpha == 0.0

    def hybrid_score() -> float:
        output = tmp_path / "out.json"
        call_command(
            "evaluate", *where, "--modes", "hybrid_score", "--output", str(output),
            stdout=StringIO(), verbosity=0,
        )  # fmt: skip
        return float(json.loads(output.read_text())["hybrid_score"]["ndcg@10"])

    assert hybrid_score() == pytest.approx(1.0)
    Collection.objects.filter(pk=collection.pk).update(search_alpha=1.0)
    assert hybrid_score() < 0.9

"""The pydoc development corpus (bench/data/pydoc): well-formed queries and judgments that
name pinned pages, a seeded tune/report split with no query in both, and a fetch script
that refuses a package or page it did not pin."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from django.conf import settings

from search.evaluation import load_qrels, load_queries

PYDOC = Path(settings.BASE_DIR) / "bench" / "data" / "pydoc"


def _module(name: str) -> ModuleType:
    """bench/data/pydoc holds scripts, not a package: load one by path."""
    spec = importlib.util.spec_from_file_location(f"pydoc_{name}", PYDOC / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


fetch = _module("fetch")
split = _module("split")


def _judgments() -> list[list[str]]:
    with (PYDOC / "judgments.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0] == ["query-id", "corpus-id", "score", "source"]
    return rows[1:]


def test_the_queries_are_at_least_100_distinct_questions() -> None:
    queries = load_queries(PYDOC / "queries.jsonl")  # the evaluation's own reader
    lines = (PYDOC / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(queries) == len(lines) >= 100  # no id given twice
    texts = [text.strip().lower() for text in queries.values()]
    assert len(set(texts)) == len(texts) and all(len(text.split()) >= 3 for text in texts)


def test_every_judgment_names_a_pinned_page_with_a_grade() -> None:
    pages = {fetch.flat_name(relative) for relative in fetch.read_checksums()}
    queries = load_queries(PYDOC / "queries.jsonl")
    rows = _judgments()
    assert all(len(row) == 4 for row in rows)
    assert {row[1] for row in rows} <= pages
    assert {row[0] for row in rows} == set(queries)  # every query judged, no stray id
    assert {row[2] for row in rows} <= {"0", "1", "2"}
    assert {row[3] for row in rows} <= {"written", "pool"}
    pairs = [(row[0], row[1]) for row in rows]
    assert len(set(pairs)) == len(pairs)
    # Each question was written with the page that answers it in mind.
    answered = {row[0] for row in rows if row[2] == "2" and row[3] == "written"}
    assert answered == set(queries)


def test_the_split_is_seeded_disjoint_and_up_to_date() -> None:
    queries = load_queries(PYDOC / "queries.jsonl")
    tune = load_qrels(PYDOC / "qrels" / "tune.tsv")
    report = load_qrels(PYDOC / "qrels" / "report.tsv")
    assert not set(tune) & set(report)
    assert set(tune) | set(report) == set(queries)
    assert abs(len(tune) - len(report)) <= 0.05 * len(queries)
    halves = split.split_ids(list(queries))
    assert set(tune) == halves["tune"] and set(report) == halves["report"]
    # The files are what split.py writes from judgments.tsv now (grade 0 left out).
    expected: dict[str, dict[str, int]] = {}
    for qid, page, grade, _source in _judgments():
        if int(grade) > 0:
            expected.setdefault(qid, {})[page] = int(grade)
    assert {**tune, **report} == expected
    # Another seed is another split; a new question, or another order, moves no old one.
    assert split.split_ids(list(queries), seed=1)["tune"] != halves["tune"]
    grown = split.split_ids([*reversed(list(queries)), "pd999", "pd1000"])
    assert grown["tune"] - {"pd999", "pd1000"} == halves["tune"]


def test_the_page_list_is_the_subset_flattened_without_collisions() -> None:
    pinned = fetch.read_checksums()
    assert 300 <= len(pinned) <= 400
    assert {relative.split("/")[0] for relative in pinned} == set(fetch.SUBSET)
    assert len({fetch.flat_name(relative) for relative in pinned}) == len(pinned)
    assert fetch.flat_name("howto/logging.html") != fetch.flat_name("library/logging.html")


def _deb(root: Path, *, package: str, version: str) -> Path:
    """A real (tiny) Debian package with one page under the documentation folder."""
    tree = root / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: test <test@example.com>\nDescription: test\n"
    )
    page = tree / fetch.HTML_ROOT / "library" / "demo.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html><title>demo</title><p>demo page</p></html>")
    deb = root / "demo.deb"
    subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
    return deb


def test_fetch_refuses_another_version_and_says_how_to_move_the_pin(tmp_path: Path) -> None:
    deb = _deb(tmp_path, package=fetch.PACKAGE, version="3.11.9-1")
    with pytest.raises(fetch.FetchError, match="3.11.9-1, not python3.11-doc") as caught:
        fetch.check_deb(deb)
    assert "To move the pin" in str(caught.value) and "--write-checksums" in str(caught.value)


def test_fetch_copies_checked_pages_flat_and_refuses_a_changed_one(tmp_path: Path) -> None:
    deb = _deb(tmp_path, package=fetch.PACKAGE, version=fetch.VERSION)
    html = fetch.unpack(deb, tmp_path / "root")
    digest = fetch.sha256_file(html / "library" / "demo.html")
    dest = tmp_path / "dest"
    fetch.copy_pages(html, dest, {"library/demo.html": digest})
    assert [p.name for p in dest.iterdir()] == ["library_demo.html"]
    (html / "library" / "demo.html").write_text("<html><p>changed</p></html>")
    with pytest.raises(fetch.FetchError, match="not matching files.sha256"):
        fetch.copy_pages(html, dest, {"library/demo.html": digest})
    with pytest.raises(fetch.FetchError, match="SHA-256"):  # not the pinned package's bytes
        fetch.check_deb(deb)

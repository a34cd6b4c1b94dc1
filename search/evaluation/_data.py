"""Reading BEIR-format datasets, with errors that say what is wrong and where."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class DatasetError(Exception):
    """A dataset that cannot be read; the message names the file and line."""


@dataclass
class BeirDataset:
    name: str
    path: Path
    split: str
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def corpus(self) -> Iterator[dict[str, str]]:
        """Documents one at a time: the corpus can be large."""
        yield from _read_jsonl(self.path / "corpus.jsonl", required=("_id",))


def _read_jsonl(path: Path, *, required: tuple[str, ...]) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc})") from exc
            if not isinstance(row, dict) or any(key not in row for key in required):
                raise DatasetError(
                    f"{path}:{number}: expected an object with {', '.join(required)}"
                )
            yield row


def load_queries(path: Path) -> dict[str, str]:
    queries = {
        str(row["_id"]): str(row["text"]) for row in _read_jsonl(path, required=("_id", "text"))
    }
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return queries


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """`query-id corpus-id score` TSV (a header line is skipped); grades are kept."""
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or (
                number == 1 and row[0].strip().lower() in ("query-id", "query_id", "qid")
            ):
                continue
            if len(row) < 3:
                raise DatasetError(f"{path}:{number}: expected query-id, corpus-id and score")
            try:
                grade = int(float(row[2]))
            except ValueError as exc:
                raise DatasetError(f"{path}:{number}: score {row[2]!r} is not a number") from exc
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = grade
    if not qrels:
        raise DatasetError(f"{path}: no judgments")
    return qrels


def load_beir(path: Path, *, split: str) -> BeirDataset:
    if not path.is_dir():
        raise DatasetError(f"no dataset folder at {path}")
    splits = sorted(p.stem for p in (path / "qrels").glob("*.tsv"))
    if split not in splits:
        raise DatasetError(
            f"no split {split!r} in {path}: a split is a judgments file qrels/<split>.tsv, "
            f"and this dataset has {', '.join(splits) or 'none'}"
        )
    queries_path = path / f"queries_{split}.jsonl"
    if not queries_path.is_file():
        queries_path = path / "queries.jsonl"
    queries = load_queries(queries_path)
    qrels = load_qrels(path / "qrels" / f"{split}.tsv")
    unknown = sorted(set(qrels) - set(queries))
    if unknown:
        raise DatasetError(
            f"qrels/{split}.tsv names {len(unknown)} unknown query id(s), e.g. {unknown[0]!r}"
        )
    if not (path / "corpus.jsonl").is_file():
        raise DatasetError(f"missing file: {path / 'corpus.jsonl'}")
    return BeirDataset(
        name=path.resolve().name,
        path=path,
        split=split,
        queries={qid: queries[qid] for qid in qrels},
        qrels=qrels,
    )

"""Write qrels/tune.tsv and qrels/report.tsv from judgments.tsv: a seeded 50/50 split.

    python3 bench/data/pydoc/split.py

judgments.tsv holds every grade (query-id, corpus-id, score 0-2, source: `written` before
any search, `pool` from pooled judging); the split is by query, so no question is in both
halves. Tune on tune.tsv only; report.tsv is for before/after figures.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 17  # issue 17; changing it changes which queries anyone may tune on
SPLITS = ("tune", "report")


def query_ids(path: Path = HERE / "queries.jsonl") -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [str(json.loads(line)["_id"]) for line in handle if line.strip()]


def split_ids(ids: list[str], seed: int = SEED) -> dict[str, set[str]]:
    """Half of the queries (rounded up) to tune, the rest to report."""
    shuffled = sorted(ids)
    random.Random(seed).shuffle(shuffled)
    half = (len(shuffled) + 1) // 2
    return {"tune": set(shuffled[:half]), "report": set(shuffled[half:])}


def read_judgments(path: Path = HERE / "judgments.tsv") -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return [row for row in rows[1:] if row]


def main() -> None:
    halves = split_ids(query_ids())
    rows = read_judgments()
    (HERE / "qrels").mkdir(exist_ok=True)
    for name in SPLITS:
        # Grade 0 (judged in the pool, not relevant) stays in judgments.tsv only: it
        # records what was looked at; trec_eval would treat it as unjudged anyway.
        kept = [row[:3] for row in rows if row[0] in halves[name] and int(row[2]) > 0]
        with (HERE / "qrels" / f"{name}.tsv").open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter="\t", lineterminator="\n")
            writer.writerow(["query-id", "corpus-id", "score"])
            writer.writerows(sorted(kept))
        print(f"qrels/{name}.tsv: {len(halves[name])} queries, {len(kept)} judgments")


if __name__ == "__main__":
    main()

"""The search statement of another commit against this one's, on the same requests.

    .venv/bin/python bench/statement_ab.py --base 8e73e70 --collection pydoc \
        --queries bench/data/pydoc/queries.jsonl [--repeat 3]

1. Runs every query once through the product's search (hybrid, the defaults, the
   collection as filter) and keeps each statement's inputs: its legs, filters and bound
   parameters (query vectors included), so both variants read exactly the same request.
2. Builds the statement with this checkout's `search/retrieval/_sql.py` and with the
   `--base` commit's (read with `git show`), and runs both --repeat times per query in
   one transaction each, alternating which goes first. The base statement gets the alpha
   this one applies (the request's, the collection's or the default), so both must return
   the same chunks; a difference is printed.
3. Prints the median and p95 of the statement alone (no embedding, no Python shaping)
   and the ratio of the medians; writes them as JSON with --output.

Reads the product database (like `manage.py evaluate`); writes nothing to it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402

import search.retrieval._search as search_module  # noqa: E402
from documents.models import Collection  # noqa: E402
from search.retrieval import Filters, SearchParams, search  # noqa: E402
from search.retrieval._sql import build_search_sql  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--collection", required=True, help="slug of an ingested collection")
    parser.add_argument("--queries", type=Path, required=True, help="JSON lines with a text")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path)
    return parser.parse_args()


def _base_module(rev: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:search/retrieval/_sql.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "_sql_base.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("_sql_base", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_sql_base"] = module  # its dataclasses look themselves up here
    spec.loader.exec_module(module)
    return module


def _requests(slug: str, texts: list[str]) -> list[tuple[dict[str, Any], dict[str, Any], Any]]:
    """(build arguments, bound parameters, SearchParams) of each query's statement."""
    captured: list[tuple[dict[str, Any], dict[str, Any], Any]] = []
    statement = search_module._statement

    def spy(params: Any, legs: Any, sql_params: Any, chunk_filters: str, **kwargs: Any) -> str:
        sql = statement(params, legs, sql_params, chunk_filters, **kwargs)
        build = {
            "mode": params.mode,
            "chunk_filters": chunk_filters,
            "with_embeddings": kwargs["with_embeddings"],
            "legs": [(leg.index, leg.dedicated) for leg in legs],
            "fusion": params.fusion,
        }
        captured.append((build, dict(sql_params), params))
        return sql

    search_module._statement = spy
    try:
        for text in texts:
            params = SearchParams(query=text, filters=Filters(collections=[slug]), rerank=False)
            search(params, user=None, full_access=True, statement_timeout_ms=0)
    finally:
        search_module._statement = statement
    return captured


def _run(sql: str, bound: dict[str, Any], params: Any) -> tuple[float, list[int]]:
    with transaction.atomic(), connection.cursor() as cursor:
        search_module._configure(cursor, params, semantic=True, statement_timeout_ms=0)
        started = time.perf_counter()
        cursor.execute(sql, bound)
        rows = cursor.fetchall()
    return (time.perf_counter() - started) * 1000, [row[0] for row in rows]


def main() -> None:
    args = _arguments()
    base = _base_module(args.base)
    collection = Collection.objects.get(slug=args.collection)
    texts = [json.loads(line)["text"] for line in args.queries.read_text().splitlines() if line]
    requests = _requests(args.collection, texts)
    times: dict[str, list[float]] = {"base": [], "head": []}
    differ = 0
    for repeat in range(args.repeat):
        for number, (build, bound, params) in enumerate(requests):
            alpha = bound.get("alpha")
            if alpha is None:  # what this statement applies to a one-collection search
                alpha = collection.search_alpha
                alpha = settings.SEARCH_DEFAULTS["alpha"] if alpha is None else alpha
            base_legs = [base.SemanticLeg(index, dedicated) for index, dedicated in build["legs"]]
            head_legs = [search_module.SemanticLeg(i, d) for i, d in build["legs"]]
            base_sql = base.build_search_sql(**{**build, "legs": base_legs})
            head_sql = build_search_sql(**{**build, "legs": head_legs})
            variants = [("base", base_sql, {**bound, "alpha": alpha}), ("head", head_sql, bound)]
            if (number + repeat) % 2:
                variants.reverse()
            ids = {}
            for name, sql, values in variants:
                elapsed, ids[name] = _run(sql, values, params)
                times[name].append(elapsed)
            if repeat == 0 and ids["base"] != ids["head"]:
                differ += 1
    report = {
        name: {
            "statements": len(values),
            "median_ms": round(statistics.median(values), 2),
            "p95_ms": round(sorted(values)[int(len(values) * 0.95)], 2),
        }
        for name, values in times.items()
    }
    ratio = report["head"]["median_ms"] / report["base"]["median_ms"]
    summary = {"base_commit": args.base, "queries": len(requests), "differ": differ, "ratio": ratio}
    print(json.dumps({**report, **summary}, indent=2))
    if args.output:
        args.output.write_text(json.dumps({**report, **summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()

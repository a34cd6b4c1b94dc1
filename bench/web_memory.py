"""Resident memory of a gunicorn web worker per embedding backend (onnx vs torch).

    .venv/bin/python bench/web_memory.py [--backends onnx,torch] [--searches 50]
        [--output bench/results/web_memory.json]

For each backend, in one invocation: starts gunicorn (gunicorn.conf.py, 2 workers, on a
free 127.0.0.1 port) on the load benchmark's database (`<product database>_load`,
bench/benchdb.py; migrated here, the product's data is never touched), waits for /readyz
(the model is loaded by then), measures every worker, sends --searches semantic
searches with different SciFact train queries (the model runs for each: no cache hits),
and measures again. Per worker: RSS and USS (memory no other process shares) in MB, and
whether libtorch is mapped into it. Prints JSON and writes it to --output.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.core.management import call_command  # noqa: E402

from bench.benchdb import database_create, database_exists, database_url  # noqa: E402
from bench.load import (  # noqa: E402  (sets up Django on the load database)
    DATABASE,
    MEDIA_ROOT,
    ROOT,
    THROTTLES,
    Service,
    answers_ok,
    local_env,
)
from documents.embedding.export import export_prepare  # noqa: E402
from tests.helpers.ports import free_port  # noqa: E402


def measure(master: int) -> list[dict[str, Any]]:
    workers = []
    for child in psutil.Process(master).children():
        memory = child.memory_full_info()
        maps = Path(f"/proc/{child.pid}/maps").read_text()
        workers.append(
            {
                "rss_mb": round(memory.rss / 2**20),
                "uss_mb": round(memory.uss / 2**20),
                "torch_mapped": "libtorch" in maps,
                "onnxruntime_mapped": "onnxruntime" in maps,
            }
        )
    return workers


def search(base_url: str, query: str) -> None:
    request = urllib.request.Request(
        f"{base_url}/api/v1/search/",
        data=json.dumps({"query": query, "mode": "semantic"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        response.read()


def run(backend: str, queries: list[str]) -> dict[str, Any]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = local_env(
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(MEDIA_ROOT),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        EMBEDDING_BACKEND=backend,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
        **THROTTLES,
    )
    web = Service(
        f"gunicorn-memory-{backend}",
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "ragsite.wsgi"],
        env,
    )
    try:
        web.wait_until(lambda: answers_ok(f"{base_url}/readyz"), timeout=180, what="ready")
        loaded = measure(web.process.pid)
        for query in queries:
            search(base_url, query)
        return {"after_load": loaded, "after_searches": measure(web.process.pid)}
    finally:
        web.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backends", default="onnx,torch")
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/web_memory.json")
    args = parser.parse_args()
    if not database_exists(DATABASE):
        database_create(DATABASE)
    call_command("migrate", verbosity=0, interactive=False)
    export_prepare()
    with (args.dataset / "queries_train.jsonl").open() as lines:
        queries = [json.loads(line)["text"] for line in itertools.islice(lines, args.searches)]
    backends = [kind.strip() for kind in args.backends.split(",") if kind.strip()]
    report = {"workers": 2, "searches": len(queries)}
    report |= {backend: run(backend, queries) for backend in backends}
    print(json.dumps(report, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

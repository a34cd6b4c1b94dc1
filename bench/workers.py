"""Ingestion throughput with 1, 2 and 3 worker processes on one ORM broker.

    .venv/bin/python bench/workers.py [--dataset ../shared/datasets/scifact] [--limit 1000]
        [--workers 1,2,3] [--group 0] [--output bench/results/workers.json]

For each worker count K, on a database of its own (`<product database>_workers`,
bench/benchdb.py, recreated and migrated per K so every run starts empty):
1. stores the first --limit SciFact documents as pending text documents (not timed);
2. starts K `manage.py qcluster` processes (WORKERS=1 each: separate processes, as on
   separate hosts; on one machine they share its cores) and warms each one up on a tiny
   document so model loading is not timed;
3. queues the documents (the product's grouping, at most 128 per task, or --group N
   documents per task) and times until every one is ready; sums the workers' CPU time.

Prints and writes JSON: per K the wall time, documents/s, chunks/s, the speed-up over
K=1, and CPU seconds per document and per chunk (from which the scaling per added core
follows: chunks/s per core = 1 / CPU seconds per chunk).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")

import django  # noqa: E402

from bench.benchdb import database_create, database_url, use_database  # noqa: E402

# A database of its own (bench/benchdb.py): the product's data is never touched.
DATABASE = use_database("workers")
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402
from django.db.models import Count  # noqa: E402
from django_q.tasks import async_task  # noqa: E402

from documents.models import Chunk, Collection, Document  # noqa: E402
from documents.queue import PROCESS_TASK, task_groups  # noqa: E402
from documents.services import document_upload  # noqa: E402

# Every qcluster this process started and has not stopped yet. They run in sessions of
# their own (so a Ctrl-C in the terminal does not hit them mid-measurement), which also
# means nothing stops them when this process dies: `main` does, on any exit it can see.
_RUNNING: list[subprocess.Popen[bytes]] = []


def read_corpus(dataset: Path, limit: int) -> list[tuple[str, str]]:
    """(name, text) of the first `limit` documents, title as a Markdown heading."""
    documents = []
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            documents.append((f"{row['_id']}.md", f"# {row['title']}\n\n{row['text']}"))
            if len(documents) >= limit:
                break
    return documents


def fresh_database() -> None:
    database_create(DATABASE, replace=True)
    connections["default"].close()
    call_command("migrate", verbosity=0)


def store(collection: Collection, documents: list[tuple[str, str]]) -> list[int]:
    ids = []
    for name, text in documents:
        result = document_upload(
            collection=collection, user=None, text=text, title=name, enqueue=False
        )
        ids.append(result.document.pk)
    return ids


def start_workers(count: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DATABASE_URL": database_url(), "WORKERS": "1", "LOG_LEVEL": "INFO"}
    processes = []
    for index in range(count):
        with (log_dir / f"worker-{count}-{index}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _RUNNING.append(process)  # registered at once: a failure on the next is covered
        processes.append(process)
    return processes


def cpu_seconds(processes: list[subprocess.Popen[bytes]]) -> float:
    """User + system CPU of the workers' process trees (the cluster forks its workers)."""
    total = 0.0
    for process in processes:
        try:
            root = psutil.Process(process.pid)
            for member in [root, *root.children(recursive=True)]:
                times = member.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def stop_workers(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each cluster's whole process group (the cluster forks its workers), then
    SIGKILL the groups still there after 30 s."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        if process in _RUNNING:
            _RUNNING.remove(process)


def _exit_on_signal(signum: int, _frame: object) -> None:
    """SIGTERM / SIGINT (a `kill`, a Ctrl-C, a CI timeout) become an exit that runs the
    `finally` blocks, which stop the clusters; a second signal cannot cut that short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    print(f"signal {signum}: stopping the workers ...", file=sys.stderr)
    raise SystemExit(128 + signum)


def wait_ready(ids: list[int], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Document.objects.filter(pk__in=ids).exclude(status__in=("ready", "failed")).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"documents not ready after {timeout:.0f} s")
        time.sleep(0.2)


def run(count: int, documents: list[tuple[str, str]], *, group: int, log_dir: Path) -> dict:
    fresh_database()
    collection = Collection.objects.create(name="bench workers", slug="bench-workers")
    warm = [(f"warm-{i}.md", f"# Warm {i}\n\nwarm up {i}") for i in range(count)]
    warmup = store(collection, warm)
    ids = store(collection, documents)
    processes = start_workers(count, log_dir)
    try:
        for document_id in warmup:  # one task each, so every worker likely loads its model
            async_task(PROCESS_TASK, [document_id])
        wait_ready(warmup, timeout=300)
        cpu_before = cpu_seconds(processes)
        if group > 0:
            groups = [ids[i : i + group] for i in range(0, len(ids), group)]
        else:
            sizes = dict(Document.objects.filter(pk__in=ids).values_list("pk", "size"))
            groups = task_groups([(pk, int(sizes.get(pk) or 0)) for pk in ids])
        started = time.perf_counter()
        for task in groups:
            async_task(PROCESS_TASK, task)
        wait_ready(ids, timeout=3600)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(processes) - cpu_before
    finally:
        stop_workers(processes)
    statuses = dict(
        Document.objects.filter(pk__in=ids)
        .values("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    chunks = Chunk.objects.filter(document_id__in=ids).count()
    return {
        "workers": count,
        "documents": len(ids),
        "tasks": len(groups),
        "statuses": statuses,
        "chunks": chunks,
        "wall_s": round(wall, 2),
        "documents_per_s": round(len(ids) / wall, 2),
        "chunks_per_s": round(chunks / wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_document": round(cpu / len(ids), 4),
        "cpu_s_per_chunk": round(cpu / chunks, 4) if chunks else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--limit", type=int, default=1000, help="documents per run")
    parser.add_argument("--workers", default="1,2,3", help="worker counts, comma-separated")
    parser.add_argument(
        "--group", type=int, default=0, help="documents per task (0: the product's grouping)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/workers.json")
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").is_file():
        parser.error(f"no corpus.jsonl in {args.dataset}")
    documents = read_corpus(args.dataset, args.limit)
    counts = [int(part) for part in args.workers.split(",") if part.strip()]
    results = []
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as log_dir:
            for count in counts:
                print(f"{count} worker(s): {len(documents)} documents ...", file=sys.stderr)
                results.append(run(count, documents, group=args.group, log_dir=Path(log_dir)))
                print(json.dumps(results[-1]), file=sys.stderr)
    finally:
        stop_workers(list(_RUNNING))  # only a SIGKILL of this process escapes this
    base = results[0]["documents_per_s"] if results else 0
    for result in results:
        result["speedup"] = round(result["documents_per_s"] / base, 2) if base else None
    report = {
        "machine": {"cpus": os.cpu_count()},
        "dataset": str(args.dataset),
        "note": "separate worker processes on one machine stand in for separate hosts",
        "runs": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

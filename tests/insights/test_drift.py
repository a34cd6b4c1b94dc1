"""Drift from the log, per collection and day: similarity of queries to their best match,
query terms the collection lacks, and chunks under another model (a collection
re-embedded halfway). On the quality page and as metrics."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from documents.models import Chunk
from insights.models import QueryLog
from tests.factories import UserFactory
from tests.insights.test_metrics import TOKEN, sample


def test_drift_on_a_collection_re_embedded_halfway(
    anon_client: APIClient, corpus: dict[str, Any], settings: Any
) -> None:
    settings.METRICS_TOKEN = TOKEN
    semantic = anon_client.post("/api/v1/search/", {"query": "volcano lava", "mode": "semantic"})
    anon_client.post("/api/v1/search/", {"query": "zebra volcano", "mode": "keyword"})
    row = QueryLog.objects.get(pk=semantic["X-Query-Log-Id"])
    best = max(r["similarity"] for r in row.results)
    assert 0.2 < best <= 1  # a cosine similarity, kept per result
    assert all("similarity" not in r for r in QueryLog.objects.get(mode="keyword").results)
    public = corpus["public"]
    chunks = list(Chunk.objects.filter(collection=public).order_by("pk"))
    assert len(chunks) == 2
    Chunk.objects.filter(pk=chunks[0].pk).update(embedding_model="old-model")

    root: Any = UserFactory.create(is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(root)
    page = admin.get("/admin/insights/querylog/quality/").content.decode()
    other = page.split('id="drift-other-model"')[1].split("</table>")[0]
    assert f"<td>{public.name}</td><td>50 %</td>" in other
    days = page.split('id="drift-days"')[1].split("</table>")[0]
    # 4 query terms (volcano, lava, zebra, volcano), one absent from the collection.
    assert f"<td>{public.name}</td><td>{best:.3f}</td><td>25 %</td>" in days
    assert "Mean similarity to the best result" in page and "manage.py reembed" in page

    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    pub = {"collection": "pub"}
    assert sample(text, "ragsite_chunks_other_model_ratio", pub) == 0.5
    assert sample(text, "ragsite_query_best_similarity", pub) == pytest.approx(best, abs=1e-5)
    assert sample(text, "ragsite_query_absent_terms_ratio", pub) == 0.25
    assert sample(text, "ragsite_query_best_similarity", {"collection": "priv"}) is None

"""The cross-encoder backend with a random-weight model in the real MiniLM-L6 cross-encoder
architecture (tests/helpers/cross_encoder.py), run with torch (sentence-transformers'
CrossEncoder) and, when the folder holds an ONNX export, with onnxruntime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from tests.factories import CollectionFactory
from tests.helpers.cross_encoder import build_cross_encoder, export_onnx

QUERY = "volcano lava"
FILES = {
    "observatory.txt": "Volcano eruptions pour lava down the slopes; the observatory tracks it.",
    "iceland.txt": "Volcanoes and lava fields of Iceland attract hikers every summer.",
    "note.txt": "Lava lava lava.",
    "ocean.txt": "Oceans cover most of the Earth and hold salt water.",
    "forest.txt": "Trees in old forests store carbon for centuries.",
}


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_cross_encoder(tmp_path_factory.mktemp("rerankers") / "minilm-l6-random")


@pytest.fixture(scope="session")
def onnx_cross_encoder_dir(cross_encoder_dir: Path) -> Path:
    folder = cross_encoder_dir.parent / "minilm-l6-random-onnx"
    shutil.copytree(cross_encoder_dir, folder)
    export_onnx(folder)
    return folder


@pytest.fixture
def corpus(db: None, ingest: Any) -> Any:
    collection = CollectionFactory.create(slug="pub", is_public=True)
    ingest(collection, FILES)
    return collection


def search(**payload: Any) -> dict[str, Any]:
    response = APIClient().post("/api/v1/search/", {"query": QUERY, **payload}, format="json")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def model_scores(folder: Path, texts: list[str]) -> list[float]:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu")
    return [float(s) for s in model.predict([(QUERY, t) for t in texts], batch_size=32)]


def test_a_cross_encoder_folder_reranks_by_its_scores(
    corpus: Any, cross_encoder_dir: Path, settings: Any
) -> None:
    fused = search()["results"]
    settings.RERANK_BACKEND = "cross-encoder"
    settings.RERANK_MODEL_PATH = str(cross_encoder_dir)
    body = search(rerank=True)
    assert body["reranker"] == "cross-encoder:minilm-l6-random" and body["notices"] == []
    expected = dict(
        zip(
            [r["chunk_id"] for r in fused],
            model_scores(cross_encoder_dir, [r["text"] for r in fused]),
            strict=True,
        )
    )
    results = body["results"]
    for result in results:
        assert result["rerank_score"] == pytest.approx(expected[result["chunk_id"]], abs=1e-5)
    assert [r["chunk_id"] for r in results] == sorted(expected, key=lambda c: -expected[c])
    assert [r["chunk_id"] for r in results] != [r["chunk_id"] for r in fused]


def test_an_onnx_export_in_the_folder_is_run_with_onnxruntime_and_agrees(
    corpus: Any, cross_encoder_dir: Path, onnx_cross_encoder_dir: Path, settings: Any
) -> None:
    settings.RERANK_BACKEND = "cross-encoder"
    settings.RERANK_MODEL_PATH = str(cross_encoder_dir)
    torch_body = search(rerank=True)
    settings.RERANK_MODEL_PATH = str(onnx_cross_encoder_dir)
    onnx_body = search(rerank=True)
    assert onnx_body["reranker"] == "cross-encoder:minilm-l6-random-onnx (onnx)"
    assert [r["chunk_id"] for r in onnx_body["results"]] == [
        r["chunk_id"] for r in torch_body["results"]
    ]
    for a, b in zip(onnx_body["results"], torch_body["results"], strict=True):
        assert a["rerank_score"] == pytest.approx(b["rerank_score"], abs=1e-4)


def test_a_missing_model_folder_is_a_notice_not_a_failed_search(
    corpus: Any, settings: Any, tmp_path: Path
) -> None:
    fused = [r["chunk_id"] for r in search()["results"]]
    settings.RERANK_BACKEND = "cross-encoder"
    settings.RERANK_MODEL_PATH = str(tmp_path / "nope")
    body = search(rerank=True)
    assert [r["chunk_id"] for r in body["results"]] == fused and body["reranker"] is None
    assert body["notices"] == [
        f"reranking skipped: RERANK_MODEL_PATH {tmp_path / 'nope'} is not a model folder "
        "(no config.json)"
    ]


RERANK_IN_A_FRESH_PROCESS = """
import json, sys
from dataclasses import dataclass
import django
django.setup()
import ragsite.wsgi, search.retrieval  # what a web process imports
before = sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules)
from search.rerank import rerank

@dataclass
class Candidate:
    text: str
    rerank_score: float | None = None
    rank_before_rerank: int | None = None

outcome = rerank("volcano lava", [Candidate("Oceans of salt water."), Candidate("Lava.")], depth=2)
print(json.dumps({
    "before": before,
    "after": sorted(m for m in ("torch", "sentence_transformers", "onnxruntime")
                    if m in sys.modules),
    "reranker": outcome.reranker,
    "notices": outcome.notices,
    "scores": [c.rerank_score for c in outcome.results],
}))
"""


def test_an_onnx_reranker_never_imports_torch(onnx_cross_encoder_dir: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ragsite.settings",
        "RERANK_BACKEND": "cross-encoder",
        "RERANK_MODEL_PATH": str(onnx_cross_encoder_dir),
    }
    result = subprocess.run(
        [sys.executable, "-c", RERANK_IN_A_FRESH_PROCESS],
        cwd=django_settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["before"] == []  # importing the search never loads torch
    assert outcome["after"] == ["onnxruntime"]  # nor does reranking with an ONNX export
    assert outcome["reranker"] == "cross-encoder:minilm-l6-random-onnx (onnx)"
    assert outcome["notices"] == [] and all(isinstance(s, float) for s in outcome["scores"])

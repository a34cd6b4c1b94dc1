"""The README's API quick start, run as written with curl against a live server and a
real worker: from nothing (a user with a password) to a token, a collection, an upload
and a search (issue #14.4)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.factories import UserFactory

PASSWORD = "correct horse battery"  # tests/factories.py

# The README's lines, with $BASE, $USERNAME, $PASSWORD and paper.txt set by the test.
TOKEN = """curl -s -u "$USERNAME:$PASSWORD" -H 'Content-Type: application/json' \
     -d '{"name": "laptop"}' $BASE/api/v1/tokens/ \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'"""
COLLECTION = """curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
     -d '{"name": "Papers", "slug": "papers"}' $BASE/api/v1/collections/"""
UPLOAD = """curl -s -H "Authorization: Bearer $TOKEN" -F collection=papers -F file=@paper.txt \
     $BASE/api/v1/documents/"""
SEARCH = """curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
     -d '{"query": "does aspirin prevent heart attacks?", "top_k": 5}' $BASE/api/v1/search/"""


def _sh(script: str, cwd: Path, **env: str) -> str:
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_quick_start_from_nothing_to_a_search(
    live_server: Any, start_worker: Any, tmp_path: Path
) -> None:
    user = UserFactory.create()
    start_worker()
    (tmp_path / "paper.txt").write_text(
        "Aspirin lowers the risk of heart attacks in people with heart disease. "
        "Volcanoes erupt where magma reaches the surface."
    )
    env = {"BASE": live_server.url, "USERNAME": user.username, "PASSWORD": PASSWORD}
    token = _sh(TOKEN, tmp_path, **env).strip()
    assert token.startswith("rag_")
    env["TOKEN"] = token
    assert json.loads(_sh(COLLECTION, tmp_path, **env))["slug"] == "papers"
    upload = json.loads(_sh(UPLOAD, tmp_path, **env))
    assert upload["status"] == "pending", upload
    deadline = time.monotonic() + 120
    status = ""
    while status != "ready" and time.monotonic() < deadline:
        time.sleep(0.5)
        check = f'curl -s -H "Authorization: Bearer $TOKEN" {upload["status_url"]}'
        status = json.loads(_sh(check, tmp_path, **env))["status"]
    assert status == "ready"
    results = json.loads(_sh(SEARCH, tmp_path, **env))["results"]
    assert results and "Aspirin" in results[0]["text"]

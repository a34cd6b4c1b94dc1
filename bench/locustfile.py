"""Locust users for bench/load.py, which starts locust with this file and LOAD_CONFIG.

- `SearchUser`: each virtual user holds its own bearer token and cycles through the
  keyword, semantic and hybrid modes with SciFact queries (requests named "search MODE").
- `Uploader`: exactly one, posts a new document through the API every few seconds
  (requests named "upload"); the worker processes them during the run.

Any answer but the expected status, or a body without the expected fields, is a failure
(also an empty semantic or hybrid answer: it would mean the user cannot read the collection).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from pathlib import Path
from typing import Any

from locust import HttpUser, constant, task

CONFIG: dict[str, Any] = json.loads(Path(os.environ["LOAD_CONFIG"]).read_text())
MODES = ("keyword", "semantic", "hybrid")
_tokens = iter(CONFIG["tokens"])
_uploads = iter(CONFIG["uploads"])
_user_numbers = itertools.count()


class SearchUser(HttpUser):
    wait_time = constant(CONFIG["think_time"])

    def on_start(self) -> None:
        number = next(_user_numbers)
        self.headers = {"Authorization": f"Bearer {next(_tokens)}"}
        self.modes = itertools.islice(itertools.cycle(MODES), number % len(MODES), None)
        self.rng = random.Random(number)

    @task
    def search(self) -> None:
        mode = next(self.modes)
        body = {
            "query": self.rng.choice(CONFIG["queries"]),
            "mode": mode,
            "top_k": 10,
            "filters": {"collections": [CONFIG["search_collection"]]},
        }
        with self.client.post(
            "/api/v1/search/",
            json=body,
            headers=self.headers,
            name=f"search {mode}",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            results = response.json().get("results")
            if not isinstance(results, list):
                response.failure("no results list in the answer")
            elif not results and mode != "keyword":
                # The vector leg always finds something in a readable collection: an
                # empty answer means the token's user cannot read it.
                response.failure(f"no results in {mode} mode")


class Uploader(HttpUser):
    fixed_count = 1
    wait_time = constant(CONFIG["upload_interval"])

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {CONFIG['upload_token']}"}

    @task
    def upload(self) -> None:
        document = next(_uploads, None)
        if document is None:
            return  # prepared enough for the run; nothing left to send
        body = {"collection": CONFIG["upload_collection"], **document}
        with self.client.post(
            "/api/v1/documents/",
            json=body,
            headers=self.headers,
            name="upload",
            catch_response=True,
        ) as response:
            if response.status_code != 202:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
            elif "id" not in response.json():
                response.failure("no document id in the answer")

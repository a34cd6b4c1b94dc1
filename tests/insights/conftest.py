from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import CollectionFactory, UserFactory
from tests.helpers.llm_server import FakeLLM

VOLCANO = "Volcanoes erupt lava and ash. Magma rises through the crust."
OCEAN = "Oceans cover most of the Earth and hold salt water."
SECRET = "Volcano monitoring budget for the private lab."


@pytest.fixture(autouse=True)
def fresh_metrics() -> None:
    """Each test's scrape reads its own database, not a cached earlier one."""
    from insights.metrics import metrics_cache_clear

    metrics_cache_clear()


@pytest.fixture
def corpus(db: None, ingest: Any, user: Any) -> dict[str, Any]:
    public = CollectionFactory.create(slug="pub", is_public=True)
    private = CollectionFactory.create(slug="priv", owner=user)
    docs = ingest(public, {"volcano.txt": VOLCANO, "ocean.txt": OCEAN})
    docs += ingest(private, {"secret.txt": SECRET})
    return {"public": public, "private": private, "docs": {d.source_name: d for d in docs}}


@pytest.fixture
def llm(settings: Any) -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        settings.LLM_BASE_URL = server.base_url
        settings.LLM_MODEL = "test-model"
        yield server


@pytest.fixture
def other_user(db: None) -> Any:
    return UserFactory.create()

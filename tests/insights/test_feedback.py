"""Feedback on results (recorded by document) and answers: the API, the search page's form
without JavaScript, and the same form in Chromium with JavaScript (static/js/feedback.js)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Browser, expect
from rest_framework.test import APIClient

from documents.models import Chunk
from insights.models import Feedback, QueryLog
from tests.factories import CollectionFactory
from tests.helpers.llm_server import FakeLLM
from tests.insights.conftest import OCEAN, VOLCANO
from tests.search import test_browser
from tests.search.test_browser import Tab, sign_in

browser = test_browser.browser
tabs = test_browser.tabs


def searched(client: APIClient, query: str = "volcano lava") -> QueryLog:
    response = client.post("/api/v1/search/", {"query": query}, format="json")
    assert response.status_code == 200
    return QueryLog.objects.get(pk=response["X-Query-Log-Id"])


def test_a_vote_is_recorded_by_document_and_replaced_not_added(
    user_client: APIClient, user: Any, corpus: dict[str, Any]
) -> None:
    row = searched(user_client)
    volcano = corpus["docs"]["volcano.txt"]
    chunk = row.results[0]["chunk"]
    response = user_client.post(
        "/api/v1/feedback/",
        {"query_log": row.pk, "chunk": chunk, "useful": False, "comment": "too short"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["document"] == volcano.pk  # by document, not by chunk
    again = user_client.post(
        "/api/v1/feedback/",
        {"query_log": row.pk, "document": volcano.pk, "useful": True},
        format="json",
    )
    assert again.status_code == 201
    vote = Feedback.objects.get()  # one vote per user per result
    assert vote.useful is True and vote.user == user and vote.document == volcano


def test_votes_survive_reprocessing_of_the_document(
    user_client: APIClient, corpus: dict[str, Any]
) -> None:
    row = searched(user_client)
    volcano = corpus["docs"]["volcano.txt"]
    user_client.post(
        "/api/v1/feedback/",
        {"query_log": row.pk, "document": volcano.pk, "useful": True},
        format="json",
    )
    Chunk.objects.filter(document=volcano).delete()  # re-processing replaces the chunks
    assert Feedback.objects.get().document == volcano


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"useful": True}, "query_log"),
        ({"useful": True, "document": 1}, "query_log"),
        ({"query_log": "x", "useful": True, "document": 1}, "query_log"),
        ({"useful": True, "answer": False}, "Name the result"),
    ],
)
def test_bad_votes_are_400_with_a_reason(
    user_client: APIClient, corpus: dict[str, Any], payload: dict[str, Any], message: str
) -> None:
    row = searched(user_client)
    if "query_log" not in payload and message != "query_log":
        payload = {**payload, "query_log": row.pk}
    response = user_client.post("/api/v1/feedback/", payload, format="json")
    assert response.status_code == 400 and message in response.content.decode()


def test_only_results_of_your_own_search_can_be_rated(
    user_client: APIClient,
    other_user: Any,
    anon_client: APIClient,
    corpus: dict[str, Any],
) -> None:
    row = searched(user_client)
    ocean = corpus["docs"]["ocean.txt"]
    not_a_result = user_client.post(
        "/api/v1/feedback/",
        {"query_log": row.pk, "document": ocean.pk + 1000, "useful": True},
        format="json",
    )
    assert not_a_result.status_code == 400
    assert "not among this search's results" in not_a_result.json()["detail"]
    other = APIClient()
    other.force_authenticate(other_user)
    volcano = corpus["docs"]["volcano.txt"].pk
    for client in (other, anon_client):
        response = client.post(
            "/api/v1/feedback/",
            {"query_log": row.pk, "document": volcano, "useful": False},
            format="json",
        )
        assert response.status_code == 400
        assert response.json()["detail"] == "no such search in your history"
    assert not Feedback.objects.exists()


def test_anonymous_votes_are_counted_apart_and_throttled(
    anon_client: APIClient, corpus: dict[str, Any], settings: Any
) -> None:
    settings.FEEDBACK_THROTTLE_ANON = "2/hour"
    row = searched(anon_client, "ocean")
    ocean = corpus["docs"]["ocean.txt"].pk
    payload = {"query_log": row.pk, "document": ocean, "useful": True}
    statuses = [
        anon_client.post("/api/v1/feedback/", payload, format="json").status_code for _ in range(3)
    ]
    assert statuses == [201, 201, 429]
    assert Feedback.objects.filter(user=None).count() == 2


def test_rating_an_answer(user_client: APIClient, corpus: dict[str, Any], llm: FakeLLM) -> None:
    search_row = searched(user_client)
    refused = user_client.post(
        "/api/v1/feedback/",
        {"query_log": search_row.pk, "answer": True, "useful": True},
        format="json",
    )
    assert refused.status_code == 400 and "no answer" in refused.json()["detail"]
    ask = user_client.post("/api/v1/ask/", {"query": "volcano"}, format="json")
    response = user_client.post(
        "/api/v1/feedback/",
        {"query_log": ask["X-Query-Log-Id"], "answer": True, "useful": False},
        format="json",
    )
    assert response.status_code == 201
    vote = Feedback.objects.get()
    assert vote.target == "answer" and vote.document is None and vote.useful is False


def feedback_forms(page: str) -> list[str]:
    return re.findall(r'<form method="post" action="/feedback/".*?</form>', page, re.S)


def test_the_page_form_posts_and_comes_back_without_a_second_log_row(
    client: Client, user: Any, corpus: dict[str, Any]
) -> None:
    client.force_login(user)
    url = "/?q=volcano&mode=hybrid"
    page = client.get(url).content.decode()
    row = QueryLog.objects.get()
    forms = feedback_forms(page)
    assert len(forms) == row.result_count >= 2
    volcano = corpus["docs"]["volcano.txt"].pk
    response = client.post(
        "/feedback/",
        {"query_log": row.pk, "document": volcano, "useful": "no", "next": url},
    )
    assert response.status_code == 302
    assert response["Location"] == f"{url}&logged={row.pk}&voted={volcano}:no#feedback-{volcano}"
    back = client.get(response["Location"].split("#")[0]).content.decode()
    assert QueryLog.objects.count() == 1  # the same search, not logged again
    form = next(f for f in feedback_forms(back) if f'value="{volcano}"' in f)
    assert 'value="no" class="link" aria-pressed="true"' in form
    assert "Thanks for the feedback." in form
    assert Feedback.objects.get().useful is False


def test_the_page_form_refuses_bad_input_and_foreign_redirects(
    client: Client, user: Any, corpus: dict[str, Any]
) -> None:
    client.force_login(user)
    client.get("/?q=volcano")
    row = QueryLog.objects.get()
    bad = client.post("/feedback/", {"query_log": row.pk, "useful": "maybe", "document": 1})
    assert bad.status_code == 400 and "The feedback was not recorded" in bad.content.decode()
    volcano = corpus["docs"]["volcano.txt"].pk
    away = client.post(
        "/feedback/",
        {
            "query_log": row.pk,
            "document": volcano,
            "useful": "yes",
            "next": "https://evil.example/",
        },
    )
    assert away.status_code == 302 and away["Location"].startswith("/?logged=")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_feedback_with_javascript_stays_on_the_page(
    tabs: Callable[[int], Tab], ingest: Any, user: Any
) -> None:
    ingest(
        CollectionFactory.create(name="Earth", is_public=True), {"v.txt": VOLCANO, "o.txt": OCEAN}
    )
    page = tabs(1280).page
    sign_in(page, user.username)
    page.goto("/?q=volcano+lava")
    first = page.locator("form.feedback").first
    first.get_by_role("button", name="Not useful").click()
    expect(first.get_by_role("status")).to_have_text("Thanks for the feedback.")
    expect(first.get_by_role("button", name="Not useful")).to_have_attribute("aria-pressed", "true")
    assert page.url.endswith("/?q=volcano+lava")  # no page load
    first.get_by_role("button", name="Useful", exact=True).click()
    expect(first.get_by_role("button", name="Useful", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    vote = Feedback.objects.get()  # replaced, not added
    assert vote.useful is True and vote.user == user
    assert QueryLog.objects.count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_feedback_without_javascript_in_chromium(
    browser: Browser, live_server: Any, ingest: Any
) -> None:
    ingest(
        CollectionFactory.create(name="Earth", is_public=True), {"v.txt": VOLCANO, "o.txt": OCEAN}
    )
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/?q=volcano+lava")
        first = page.locator("form.feedback").first
        first.get_by_role("button", name="Useful", exact=True).click()
        expect(first.get_by_role("status")).to_have_text("Thanks for the feedback.")
        assert "logged=" in page.url
        vote = Feedback.objects.get()
        assert vote.useful is True and vote.user is None  # anonymous: counted apart
        assert QueryLog.objects.count() == 1
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_streamed_answer_gets_its_feedback_control_when_complete(
    tabs: Callable[[int], Tab], ingest: Any, user: Any, llm: FakeLLM
) -> None:
    ingest(
        CollectionFactory.create(name="Earth", is_public=True), {"v.txt": VOLCANO, "o.txt": OCEAN}
    )
    llm.piece_delay = 0.2  # the control must wait for the end of the stream
    page = tabs(1280).page
    sign_in(page, user.username)
    page.goto("/?q=volcano+lava")
    ask = page.locator(".ask")
    ask.get_by_role("button", name="Ask").click()
    expect(ask.locator(".answer-status")).to_have_text("Writing the answer…")
    expect(ask.locator("form.feedback")).to_have_count(0)  # not while it streams
    expect(ask.locator(".answer-status")).to_have_text("Answer complete.")
    control = ask.locator("form.feedback")
    expect(control).to_have_count(1)
    control.get_by_role("button", name="Useful", exact=True).click()
    expect(control.get_by_role("status")).to_have_text("Thanks for the feedback.")
    expect(control.get_by_role("button", name="Useful", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    vote = Feedback.objects.get()
    assert vote.target == "answer" and vote.useful is True and vote.user == user
    assert vote.query_log.endpoint == "ask" and vote.query_log.llm_model == "test-model"

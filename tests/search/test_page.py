"""The search page and the document page, through Django's test client: the state in the
URL, form errors, empty states, escaping, pagination, access, downloads and the CSP."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from documents.models import Chunk, CollectionGrant, Document
from documents.services import collection_update, document_upload
from ragsite.csp import API_POLICY, POLICY
from tests.factories import CollectionFactory, UserFactory

UPLOAD_URL = "/admin/documents/document/upload/"
XSS = "<script>window.__pwned=1</script>"


@pytest.fixture
def corpus(db: None, ingest: Any) -> dict[str, Any]:
    public = CollectionFactory.create(slug="pub", name="Public papers", is_public=True)
    reader = UserFactory.create()
    private = CollectionFactory.create(slug="priv", name="Private notes")
    CollectionGrant.objects.create(collection=private, user=reader, permission="read")
    volcano, ocean = ingest(
        public,
        {
            "volcano.txt": "Volcanoes erupt lava and ash. Magma rises through the crust.",
            "ocean.txt": "Oceans cover most of the Earth and hold salt water.",
        },
        metadata={"team": "geo"},
    )
    (secret,) = ingest(private, {"secret.txt": "Volcano monitoring budget for the lab."})
    return {
        "public": public,
        "private": private,
        "volcano": volcano,
        "secret": secret,
        "reader": reader,
    }


def html(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def results_region(page: str) -> str:
    return page[page.index('<div id="results"') :]


def result_titles(page: str) -> list[str]:
    return re.findall(r'class="result-title"[^>]*><a href="[^"]*">([^<]*)</a>', page)


def errors(page: str) -> list[str]:
    match = re.search(r'id="form-errors".*?<ul>(.*?)</ul>', page, re.S)
    return re.findall(r"<li>(.*?)</li>", match.group(1)) if match else []


def test_search_shows_highlighted_results_linking_to_the_cited_chunk(
    client: Client, corpus: dict[str, Any]
) -> None:
    page = html(client.get("/", {"q": "volcano lava"}))
    # Semantic search ranks every public chunk; the private lab note stays hidden. A text
    # file's title is its first short line.
    assert result_titles(page) == [
        "Volcanoes erupt lava and ash. Magma rises through the crust.",
        "Oceans cover most of the Earth and hold salt water.",
    ]
    chunk = Chunk.objects.get(document=corpus["volcano"])
    # The link carries the search (`back`) for the document page's way back to it.
    back = "back=q%3Dvolcano%2Blava"
    link = f'href="/documents/{corpus["volcano"].pk}/?chunk={chunk.pk}&amp;{back}#chunk-{chunk.pk}"'
    assert link in page
    assert "<mark>Volcanoes</mark> erupt <mark>lava</mark>" in page
    assert "<strong>2 results</strong>" in page and re.search(r'class="timing">\d+ ms<', page)
    assert '<span class="chip">Public papers</span>' in page
    # The explanation of the score is there without JavaScript, folded.
    folded = re.search(r'<details class="why">(.*?)</details>', page, re.S)
    assert folded is not None
    why = folded.group(1)
    assert "Why this result" in why
    assert "rank 1, BM25 score" in why and "rank 1, cosine similarity" in why
    # The default fusion (score, alpha 0.6): the top result of both legs scales to 1 in each.
    assert "1.0000 = 0.6 × 1.000 (semantic) + 0.4 × 1.000 (keyword)" in why


def _explanations(page: str) -> list[str]:
    return re.findall(r"<dt>Score</dt><dd>(.*?)</dd>", page, re.S)


def test_the_explanation_follows_the_fusion_and_the_collections_alpha(
    client: Client, corpus: dict[str, Any], settings: Any
) -> None:
    """The page says how each score was made: with the alpha the search applied (the
    collection's own when one was saved), or the RRF sum when RRF is the default."""
    collection_update(collection=corpus["public"], search_alpha=0.25)
    page = html(client.get("/", {"q": "volcano lava"}))
    assert _explanations(page)[0].startswith("1.0000 = 0.25 × 1.000 (semantic) + 0.75 × 1.000")
    # The second result: found by the semantic leg only (BM25 has no match), so its score
    # is alpha times its scaled similarity; the keyword part is 0.
    second = _explanations(page)[1]
    match = re.match(r"([0-9.]+) = 0.25 × ([0-9.]+) \(semantic\) \+ 0.75 × 0.000", second)
    assert match is not None, second
    assert float(match.group(1)) == pytest.approx(0.25 * float(match.group(2)), abs=1e-3)

    settings.SEARCH_DEFAULTS = {**settings.SEARCH_DEFAULTS, "fusion": "rrf"}
    page = html(client.get("/", {"q": "volcano lava"}))
    assert _explanations(page)[0].endswith("= 1/(60 + 1) + 1/(60 + 1) (reciprocal rank fusion)")


def test_the_search_state_is_kept_in_the_url_and_the_form(
    client: Client, corpus: dict[str, Any]
) -> None:
    client.force_login(corpus["reader"])
    page = html(client.get("/?q=volcano&mode=keyword&collection=priv"))
    assert result_titles(page) == ["Volcano monitoring budget for the lab."]
    assert 'name="q" id="id_q" value="volcano"' in page
    assert re.search(r'value="keyword" checked', page)
    assert not re.search(r'value="hybrid" checked', page)
    assert '<option value="priv" selected>Private notes</option>' in page
    assert "Keyword search" in page
    # Repeated collection parameters (a hand-made link) search each of them.
    both = html(client.get("/?q=volcano&mode=keyword&collection=priv&collection=pub"))
    assert sorted(result_titles(both)) == [
        "Volcano monitoring budget for the lab.",
        "Volcanoes erupt lava and ash. Magma rises through the crust.",
    ]
    # A link may preselect the collection before anything is searched.
    landing = html(client.get("/?collection=pub"))
    assert '<option value="pub" selected>Public papers</option>' in landing
    assert re.search(r'value="hybrid" checked', landing)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"q": ""}, "Type a few words to search for."),
        ({"q": "   "}, "Type a few words to search for."),
        ({"q": "x" * 1001}, "The query is 1001 characters long; the limit is 1000."),
        ({"q": "-volcano"}, "Needs at least one word to search for."),
        ({"q": "volcano", "mode": "fuzzy"}, "Choose hybrid, keyword or semantic search."),
        ({"q": "volcano", "page": "two"}, "The page must be a whole number."),
        ({"q": "volcano", "page": "0"}, "The page must be 1 or more."),
        ({"q": "volcano", "page": "1" + "0" * 30}, "The page must be 100 or less."),
        ({"q": "volcano\x00"}, "Null characters are not allowed."),
        ({"q": "volcano", "collection": "priv"}, "There is no collection “priv” you can read."),
    ],
)
def test_invalid_input_is_a_form_error_not_a_crash(
    client: Client, corpus: dict[str, Any], params: dict[str, str], message: str
) -> None:
    page = html(client.get("/", params))
    assert errors(page) == [message]
    assert result_titles(page) == []
    query_is_wrong = len(params) == 1
    found = re.search(r'<input type="search"[^>]*>', page)
    assert found is not None
    query_input = found.group(0)
    assert ('aria-invalid="true"' in query_input) == query_is_wrong


def test_anonymous_visitors_see_public_collections_and_a_sign_in_link(
    client: Client, corpus: dict[str, Any]
) -> None:
    page = html(client.get("/", {"q": "volcano"}))
    assert '<option value="pub">Public papers</option>' in page
    assert "Private notes" not in page and "monitoring budget" not in page
    assert 'href="/accounts/login/?next=/%3Fq%3Dvolcano">Sign in</a>' in page
    client.force_login(UserFactory.create())  # no grant: still only the public collection
    assert "Private notes" not in html(client.get("/", {"q": "volcano"}))
    client.force_login(corpus["reader"])
    signed_in = html(client.get("/", {"q": "volcano"}))
    assert '<option value="priv">Private notes</option>' in signed_in
    assert "monitoring budget" in signed_in and "Sign out" in signed_in


def test_no_documents_yet_links_to_the_admin_upload(client: Client, db: None) -> None:
    page = html(client.get("/"))
    assert "No documents yet" in page and f'href="{UPLOAD_URL}"' in page
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    staff = html(client.get("/", {"q": "anything"}))
    assert "No documents yet" in staff
    assert f'<a class="button-link primary" href="{UPLOAD_URL}">Upload documents</a>' in staff


def test_no_results_suggests_the_other_modes(client: Client, corpus: dict[str, Any]) -> None:
    page = html(client.get("/", {"q": "photosynthesis", "mode": "keyword"}))
    assert "No results for “photosynthesis”" in page
    assert 'href="?q=photosynthesis&amp;mode=hybrid">Try hybrid search</a>' in page
    assert 'href="?q=photosynthesis&amp;mode=semantic">Try semantic search</a>' in page
    filtered = html(
        client.get("/", {"q": "photosynthesis", "mode": "keyword", "collection": "pub"})
    )
    assert 'href="?q=photosynthesis&amp;mode=keyword">Search all collections</a>' in filtered


def test_documents_still_embedding_are_counted(client: Client, corpus: dict[str, Any]) -> None:
    for name in ("a.txt", "b.txt"):
        document_upload(
            collection=corpus["public"],
            user=None,
            file=ContentFile(f"Pending text {name}".encode(), name=name),
            enqueue=False,
        )
    page = html(client.get("/", {"q": "pending", "mode": "keyword"}))
    assert "2 documents are still being embedded and will appear in results once ready." in page
    assert "No results for “pending”" in page


def test_results_are_paginated(client: Client, db: None, ingest: Any) -> None:
    collection = CollectionFactory.create(slug="reports", is_public=True)
    ingest(
        collection,
        {f"report{i:02}.txt": f"Report {i} on glacier retreat, number {i}." for i in range(23)},
    )
    first = html(client.get("/", {"q": "glacier", "mode": "keyword"}))
    assert "<strong>23 results</strong>" in first and "showing 1–10" in first
    assert len(result_titles(first)) == 10
    assert 'href="?q=glacier&amp;mode=keyword&amp;page=2" rel="next">Next ›</a>' in first
    assert 'aria-current="page" aria-label="Page 1, current page">1</a>' in first
    third = html(client.get("/", {"q": "glacier", "mode": "keyword", "page": "3"}))
    assert "showing 21–23" in third and len(result_titles(third)) == 3
    assert 'href="?q=glacier&amp;mode=keyword&amp;page=2" rel="prev">‹ Previous</a>' in third
    titles = set(result_titles(first))
    for number in (2, 3):
        more = html(client.get("/", {"q": "glacier", "mode": "keyword", "page": number}))
        titles |= set(result_titles(more))
    assert len(titles) == 23  # every report exactly once across the pages
    beyond = html(client.get("/", {"q": "glacier", "mode": "keyword", "page": "9"}))
    assert "No more results" in beyond
    assert 'href="?q=glacier&amp;mode=keyword">Back to the first page</a>' in beyond


def test_script_in_a_document_is_shown_as_text(
    client: Client, corpus: dict[str, Any], ingest: Any
) -> None:
    (document,) = ingest(
        corpus["public"],
        {"evil.txt": f"Harmless words then {XSS} done."},
        title=f"Evil {XSS}",
        metadata={"note": XSS},
    )
    search_page = html(client.get("/", {"q": "harmless words", "mode": "keyword"}))
    document_page = html(client.get(f"/documents/{document.pk}/"))
    for page in (search_page, document_page):
        assert "<script>window" not in page
        assert "&lt;script&gt;window.__pwned=1" in page
        assert "Evil &lt;script&gt;window.__pwned=1&lt;/script&gt;</" in page  # the title
        # The only scripts are our own static files.
        assert re.findall(r"<script[^>]*>", page) in (
            [],
            [
                '<script src="/static/js/search.js" defer>',
                '<script src="/static/js/feedback.js" defer>',
            ],
        )


def test_document_page_shows_metadata_and_chunks_in_order_with_the_cited_one_marked(
    client: Client, db: None, ingest: Any
) -> None:
    collection = CollectionFactory.create(slug="guide", name="Guide", is_public=True)
    text = "# Field guide\n\n" + "\n\n".join(
        f"## Part {i}\n\n" + " ".join(f"Sentence {j} of part {i} about birds." for j in range(40))
        for i in range(3)
    )
    (document,) = ingest(
        collection, {"guide.md": text}, metadata={"year": 2024, "team": "ornithology"}
    )
    chunks = list(Chunk.objects.filter(document=document).order_by("ordinal"))
    assert len(chunks) > 2
    cited = chunks[1]
    page = html(client.get(f"/documents/{document.pk}/", {"chunk": cited.pk}))
    assert "<h1>Field guide</h1>" in page
    assert '<span class="badge badge-ready">Ready</span>' in page
    assert '<dt>team</dt><dd class="break">ornithology</dd>' in page
    assert '<dt>year</dt><dd class="break">2024</dd>' in page
    assert "text/markdown" in page and f"{len(chunks)} chunks" in page
    ids = [int(i) for i in re.findall(r'<li id="chunk-(\d+)"', page)]
    assert ids == [c.pk for c in chunks]
    assert f'<li id="chunk-{cited.pk}" class="chunk cited" aria-current="true">' in page
    assert page.count("Search result</strong>") == 1
    assert f'href="/documents/{document.pk}/original/"' in page
    assert 'href="/?collection=guide">Guide</a>' in page


def test_a_document_not_ready_says_so(client: Client, corpus: dict[str, Any]) -> None:
    failed = corpus["volcano"]
    Document.objects.filter(pk=failed.pk).update(status="failed", error="cannot read the PDF")
    page = html(client.get(f"/documents/{failed.pk}/"))
    assert "This document could not be processed" in page and "cannot read the PDF" in page
    pending = document_upload(
        collection=corpus["public"],
        user=None,
        file=ContentFile(b"Not yet embedded.", name="later.txt"),
        enqueue=False,
    ).document
    page = html(client.get(f"/documents/{pending.pk}/"))
    assert "This document is pending" in page and "No text yet" in page


def test_documents_the_caller_may_not_read_are_not_found(
    client: Client, corpus: dict[str, Any]
) -> None:
    secret = corpus["secret"].pk
    assert client.get(f"/documents/{secret}/").status_code == 404
    assert client.get(f"/documents/{secret}/original/").status_code == 404
    assert client.get("/documents/999999/").status_code == 404
    client.force_login(UserFactory.create())  # signed in, but without a grant
    assert client.get(f"/documents/{secret}/").status_code == 404
    client.force_login(corpus["reader"])
    assert client.get(f"/documents/{secret}/").status_code == 200


def test_the_original_downloads_as_an_attachment_that_cannot_run(
    client: Client, db: None, ingest: Any
) -> None:
    collection = CollectionFactory.create(is_public=True)
    markup = f"<html><body><p>Hello page</p>{XSS}</body></html>"
    (document,) = ingest(collection, {"page.html": markup})
    response = client.get(f"/documents/{document.pk}/original/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"  # kept
    assert response.getvalue().decode() == markup


def test_html_pages_carry_a_csp_that_forbids_inline_script(
    client: Client, corpus: dict[str, Any]
) -> None:
    for url in ("/", "/?q=volcano", f"/documents/{corpus['volcano'].pk}/", "/accounts/login/"):
        response = client.get(url)
        assert response["Content-Security-Policy"] == POLICY
    assert "script-src 'self';" in POLICY and "unsafe-inline" not in POLICY
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    assert client.get(UPLOAD_URL)["Content-Security-Policy"] == POLICY
    assert "Content-Security-Policy" not in client.get("/healthz")  # not HTML
    # DRF's browsable API may use inline styles, still no inline script.
    browsable = client.get("/api/v1/documents/", HTTP_ACCEPT="text/html")
    assert browsable["Content-Security-Policy"] == API_POLICY
    assert "script-src 'self';" in API_POLICY and "style-src 'self' 'unsafe-inline'" in API_POLICY

"""Issue 14, point 13: in semantic mode the snippet is the chunk's passage that best matches
the query (most query terms; else closest in meaning, from one model call per page), with
the query's words highlighted and everything else escaped; the count says what it means."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from documents import embedding
from documents.highlight import highlight, query_terms, stem
from search import snippets
from search.page import result_count_label
from search.snippets import SnippetSource, best_by_terms, passage_snippets, sentence_windows
from tests.factories import CollectionFactory

FILLER = " ".join(
    f"Paragraph filler sentence {i} describes the committee's quarterly schedule." for i in range(6)
)
VOLCANO_CHUNK = (
    f"{FILLER} Volcanoes form where magma from the mantle rises through cracks in the crust. "
    "The committee meets on Tuesdays."
)


def test_terms_skip_excluded_words_stopwords_and_single_letters() -> None:
    assert query_terms('how do volcanoes form -lava -"hot ash" a') == {"volcano", "form"}
    assert query_terms("the") == {"the"}  # nothing else: the stopword is the query
    assert stem("Eruptions") == stem("eruption") and stem("tides") == stem("tide")


def test_highlight_escapes_and_survives_regex_characters_and_non_ascii() -> None:
    text = "<script>x()</script> C++ (a|b) .* Größe café CAFÉS naïve"
    html = highlight(text, query_terms("größe cafés (a|b) .* [ c++ \\"))
    assert html.startswith("&lt;script&gt;x()&lt;/script&gt;")
    assert "<mark>Größe</mark> <mark>café</mark> <mark>CAFÉS</mark>" in html
    assert "<script" not in html and ".*" in html
    assert str(highlight("<b>&</b>", frozenset())) == "&lt;b&gt;&amp;&lt;/b&gt;"


def test_windows_are_whole_sentences_and_the_best_has_the_most_terms() -> None:
    windows = sentence_windows(VOLCANO_CHUNK, max_chars=120)
    assert all(e - s <= 120 for s, e in windows)
    best = best_by_terms(VOLCANO_CHUNK, windows, query_terms("how do volcanoes form"))
    assert best is not None
    assert VOLCANO_CHUNK[best[0] : best[1]].startswith("Volcanoes form where magma")
    assert best_by_terms(VOLCANO_CHUNK, windows, query_terms("glaciers")) is None


def test_an_overlong_sentence_is_cut_into_windows_at_spaces() -> None:
    text = " ".join(["word"] * 200) + " target " + " ".join(["word"] * 20)
    windows = sentence_windows(text, max_chars=100)
    assert all(e - s <= 100 for s, e in windows)
    html = passage_snippets("target", [SnippetSource(1, text)])[1]
    assert "<mark>target</mark>" in html and html.startswith("… ")


def test_without_shared_words_the_closest_passage_by_meaning_costs_one_model_call(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    calls: list[int] = []
    real = embedding.embed_texts

    def counting(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        return real(texts, **kwargs)

    monkeypatch.setattr(snippets, "embed_texts", counting)
    sources = [
        SnippetSource(
            i,
            "The invoice total was paid by bank transfer in March, after the audit. "
            "Quarterly budgets were reviewed by the finance team and approved by the board. "
            "Office chairs were replaced on the second floor during the summer break. "
            "Kittens and older felines purr when they are content and warm. "
            "Parking permits for visitors are issued at the front desk on request. "
            "The printer on the third floor needs new toner cartridges every month.",
        )
        for i in range(10)
    ]
    budget = settings.SEARCH_SNIPPET_MEANING_WINDOWS
    picked = passage_snippets("cat", sources)
    # One call for the whole page: the query and the windows, within the page's budget.
    assert len(calls) == 1 and calls[0] <= budget + 1
    assert len(picked) == 10
    compared = (calls[0] - 1) // 2  # each chunk here is two windows
    assert all("felines purr" in picked[i] for i in range(compared))
    # Past the budget a result shows its chunk's first passage.
    assert all(picked[i].startswith("The invoice total") for i in range(compared, 10))

    settings.SEARCH_SNIPPET_MEANING_WINDOWS = 0
    assert passage_snippets("cat", sources)[0].startswith("The invoice total")
    assert len(calls) == 1


def test_semantic_mode_snippet_is_the_matching_passage_highlighted(
    client: Client, db: None, ingest: Any
) -> None:
    public = CollectionFactory.create(slug="geo", name="Geo", is_public=True)
    ingest(public, {"volcano.txt": VOLCANO_CHUNK, "other.txt": "Tides follow the moon."})
    page = client.get("/", {"q": "how do volcanoes form", "mode": "semantic"}).content.decode()
    snippets_html = re.findall(r'<p class="snippet">(.*?)</p>', page, re.S)
    assert "<mark>Volcanoes</mark> <mark>form</mark> where magma" in snippets_html[0]
    assert snippets_html[0].startswith("… ")  # not the chunk's first words
    assert "<strong>2 passages ranked by meaning</strong>" in page


def test_keyword_mode_keeps_the_search_snippet(client: Client, db: None, ingest: Any) -> None:
    public = CollectionFactory.create(slug="geo", name="Geo", is_public=True)
    ingest(public, {"volcano.txt": VOLCANO_CHUNK})
    page = client.get("/", {"q": "magma", "mode": "keyword"}).content.decode()
    assert "<mark>magma</mark>" in page
    assert "<strong>1 result</strong>" in page


def test_count_labels(settings: Any) -> None:
    depth = settings.SEARCH_DEFAULTS["semantic_depth"]
    assert result_count_label(depth, mode="semantic") == f"Top {depth} passages by meaning"
    assert result_count_label(1, mode="semantic") == "1 passage ranked by meaning"
    assert result_count_label(3, mode="keyword") == "3 results"


def test_only_the_start_of_a_giant_chunk_is_read(settings: Any) -> None:
    """A multi-megabyte chunk (stored before the chunker bounded them) costs a bounded scan:
    a term past snippets.SCAN_CHARS is not looked for."""
    settings.SEARCH_SNIPPET_MEANING_WINDOWS = 0
    text = "Opening words here. " + "Filler sentence number one. " * 200_000 + "Volcano at the end."
    html = passage_snippets("volcano", [SnippetSource(1, text)])[1]
    assert html.startswith("Opening words here.") and "<mark>" not in html

"""Hybrid retrieval on the real database and model: modes, BM25 statistics, filters,
options, access, and the one-statement rule."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from documents.models import Collection, TermDocumentFrequency
from documents.services import collection_update
from search.retrieval import Filters, QueryError, SearchParams, search
from search.retrieval.types import Mode
from tests.factories import CollectionFactory, UserFactory

CORPUS = {
    "heart.txt": "Myocardial infarction, commonly called a heart attack, happens when blood "
    "flow to the heart muscle stops. Aspirin lowers the risk of a second heart attack.",
    "cats.txt": "Cats are small carnivorous mammals. Domestic cats eat fish, mice and dry food.",
    "dogs.txt": "Dogs are loyal companions. Dogs bark at strangers and love long walks.",
    "plants.txt": "Photosynthesis in plants turns sunlight, water and carbon dioxide into sugar.",
    "stars.txt": "Stars are spheres of plasma held together by gravity; the Sun is a star.",
}


@pytest.fixture
def corpus(db: None, ingest: Any) -> Any:
    collection = CollectionFactory.create(slug="science", is_public=True)
    documents = ingest(collection, CORPUS, metadata={"kind": "fact"})
    assert all(d.status == "ready" for d in documents)
    return collection


def _titles(response: Any) -> list[str]:
    return [r.source_name for r in response.results]


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_every_mode_finds_the_relevant_document(corpus: Any, mode: Mode) -> None:
    response = search(SearchParams(query="What do cats eat?", mode=mode), user=None)
    assert _titles(response)[0] == "cats.txt"


def test_keyword_leg_is_or_semantics_bm25(corpus: Any) -> None:
    # An AND query would find nothing: no document holds all of these words.
    response = search(
        SearchParams(query="how does aspirin affect the heart of cats", mode="keyword"), user=None
    )
    titles = _titles(response)
    assert titles[0] == "heart.txt" and "cats.txt" in titles
    first, second = response.results[0].keyword_score, response.results[1].keyword_score
    assert first is not None and second is not None and first > second > 0


def test_semantic_leg_finds_meaning_without_shared_words(corpus: Any) -> None:
    response = search(SearchParams(query="cardiac arrest", mode="semantic"), user=None)
    assert _titles(response)[0] == "heart.txt"
    keyword = search(SearchParams(query="cardiac arrest", mode="keyword"), user=None)
    assert keyword.total == 0


def test_hybrid_fuses_ranks_by_rrf(corpus: Any) -> None:
    params = SearchParams(query="heart attack aspirin", mode="hybrid", rrf_k=60, fusion="rrf")
    result = search(params, user=None).results[0]
    assert result.source_name == "heart.txt"
    assert result.keyword_rank is not None and result.semantic_rank is not None
    expected = 1 / (60 + result.keyword_rank) + 1 / (60 + result.semantic_rank)
    assert result.score == pytest.approx(expected)
    # A leg the chunk is missing from contributes nothing.
    weighted = search(
        SearchParams(
            query="heart attack aspirin", keyword_weight=2.0, semantic_weight=0.0, fusion="rrf"
        ),
        user=None,
    ).results[0]
    assert weighted.keyword_rank is not None
    assert weighted.score == pytest.approx(2.0 / (60 + weighted.keyword_rank))


def test_score_fusion_mixes_min_max_normalised_legs_by_alpha(corpus: Any) -> None:
    """The default fusion (issue 17): each leg's scores scaled to [0, 1] within the leg,
    then alpha * semantic + (1 - alpha) * keyword; a leg a chunk is missing from adds 0."""

    def run(alpha: float, mode: Mode = "hybrid") -> list[Any]:
        params = SearchParams(query="heart attack aspirin", mode=mode, fusion="score", alpha=alpha)
        return search(params, user=None).results

    top = run(0.6)[0]
    assert top.source_name == "heart.txt" and top.keyword_rank == top.semantic_rank == 1
    assert top.score == pytest.approx(1.0)  # best in both legs
    # alpha 1: the semantic leg's order; alpha 0: the keyword leg's (among what it found).
    semantic_order = [r.chunk_id for r in run(1.0, "semantic")]
    assert [r.chunk_id for r in run(1.0)][: len(semantic_order)] == semantic_order
    keyword_order = [r.chunk_id for r in run(0.0, "keyword")]
    assert [r.chunk_id for r in run(0.0)][: len(keyword_order)] == keyword_order
    for result in run(0.6):
        assert 0.0 <= result.score <= 1.0


def test_a_collections_own_alpha_weighs_its_chunks_unless_the_request_gives_one(
    corpus: Any, ingest: Any
) -> None:
    """Collection.search_alpha (tuned on its own queries) replaces SEARCH_ALPHA for its
    chunks; collections searched together each keep theirs; a request's alpha wins."""

    def run(alpha: float | None = None, mode: Mode = "hybrid") -> list[Any]:
        params = SearchParams(query="heart attack aspirin", mode=mode, fusion="score", alpha=alpha)
        return search(params, user=None).results

    default = run()
    assert {r.alpha for r in default} == {0.6}  # SEARCH_ALPHA
    for result in default:
        assert result.keyword_norm is not None and result.semantic_norm is not None
        assert result.score == pytest.approx(0.6 * result.semantic_norm + 0.4 * result.keyword_norm)
    collection_update(collection=corpus, search_alpha=1.0)
    semantic_order = [r.chunk_id for r in run(mode="semantic")]
    own = run()
    assert {r.alpha for r in own} == {1.0}
    assert [r.chunk_id for r in own][: len(semantic_order)] == semantic_order
    # The request's alpha overrides the collection's.
    keyword_order = [r.chunk_id for r in run(mode="keyword")]
    assert [r.chunk_id for r in run(0.0)][: len(keyword_order)] == keyword_order
    assert {r.alpha for r in run(0.0)} == {0.0}

    # Two collections in one search: each chunk weighed by its own collection's alpha.
    other = CollectionFactory.create(slug="other-science", is_public=True)
    ingest(other, {"heart2.txt": CORPUS["heart.txt"]})
    both = run()
    by_collection = {r.collection: r.alpha for r in both}
    assert by_collection == {"science": 1.0, "other-science": 0.6}
    # RRF and the single legs report no alpha.
    rrf = search(SearchParams(query="heart attack", fusion="rrf"), user=None).results
    assert rrf and all(r.alpha is None and r.keyword_norm is None for r in rrf)
    assert all(r.alpha is None for r in run(mode="semantic"))
    # The database refuses an alpha outside 0..1, whatever path writes it.
    with pytest.raises(IntegrityError), transaction.atomic():
        Collection.objects.filter(pk=corpus.pk).update(search_alpha=1.5)


def test_adding_documents_changes_idf_and_ranking(corpus: Any, ingest: Any) -> None:
    def idf_rank() -> list[str]:
        return _titles(search(SearchParams(query="gravity mammals", mode="keyword"), user=None))

    assert idf_rank()[0] in ("stars.txt", "cats.txt")
    before_df = TermDocumentFrequency.objects.get(collection=corpus, lexeme="graviti").df
    first = idf_rank()[0]
    # Many new documents mention the first winner's term, so its IDF falls.
    term = "gravity" if first == "stars.txt" else "mammals"
    ingest(corpus, {f"extra{i}.txt": f"Note {i} on {term} and other matters." for i in range(6)})
    after_df = TermDocumentFrequency.objects.get(collection=corpus, lexeme="graviti").df
    if term == "gravity":
        assert after_df == before_df + 6
    ranking = [t for t in idf_rank() if not t.startswith("extra")]
    assert ranking[0] != first


def test_statistics_are_per_collection(corpus: Any, ingest: Any) -> None:
    other = CollectionFactory.create(slug="other", is_public=True)
    ingest(other, {"o.txt": "Cats cats cats everywhere, cats and more cats."})
    assert TermDocumentFrequency.objects.get(collection=corpus, lexeme="cat").df == 1
    assert TermDocumentFrequency.objects.get(collection=other, lexeme="cat").df == 1


def test_phrases_and_excluded_terms(corpus: Any) -> None:
    phrase = search(SearchParams(query='"heart attack"', mode="hybrid"), user=None)
    assert _titles(phrase) == ["heart.txt"]
    excluded = search(SearchParams(query="animals -dogs", mode="hybrid"), user=None)
    assert "dogs.txt" not in _titles(excluded) and excluded.total > 0


@pytest.mark.parametrize("query", ["the of and a", "?!... ***"])
def test_stop_words_or_symbols_give_an_empty_keyword_leg(corpus: Any, query: str) -> None:
    assert search(SearchParams(query=query, mode="keyword"), user=None).total == 0
    hybrid = search(SearchParams(query=query, mode="hybrid"), user=None)
    assert hybrid.total > 0 and all(r.keyword_rank is None for r in hybrid.results)


def test_query_with_nothing_to_search_is_refused(corpus: Any) -> None:
    with pytest.raises(QueryError):
        search(SearchParams(query="-dogs"), user=None)


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_search_is_one_sql_statement(corpus: Any, mode: Mode) -> None:
    with CaptureQueriesContext(connection) as queries:
        search(SearchParams(query="cats and dogs", mode=mode), user=None)
    # Transaction control (savepoints inside the test's transaction) is not a statement
    # of the search; one set_config() of the SET LOCAL values (statement_timeout, and
    # the HNSW settings for a semantic leg) is allowed before it, and, when a model is
    # needed, the read of the scope's models (whose queries to embed) in the same
    # transaction.
    statements = [q["sql"] for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    plans = [sql for sql in statements if "col.embedding_passage_prefix" in sql]
    searches = [sql for sql in statements if "set_config" not in sql and sql not in plans]
    assert len(searches) == 1, statements
    assert len(plans) == (0 if mode == "keyword" else 1)
    assert len(statements) == 2 + len(plans), statements


def test_snippets_mark_terms_and_escape_html(db: None, ingest: Any) -> None:
    collection = CollectionFactory.create(is_public=True)
    ingest(collection, {"x.txt": "Beware <script>alert('xss')</script> in the enzyme text."})
    result = search(SearchParams(query="enzyme script", mode="keyword"), user=None).results[0]
    assert "<mark>enzyme</mark>" in result.snippet
    assert "<script>" not in result.snippet and "&lt;" in result.snippet
    # Words inside what looks like markup in a text document are still searchable.
    found = search(SearchParams(query="xss", mode="keyword"), user=None)
    assert [r.source_name for r in found.results] == ["x.txt"]


def test_result_carries_citation_and_explanation(corpus: Any) -> None:
    response = search(SearchParams(query="photosynthesis sugar"), user=None)
    result = response.results[0]
    assert result.source_name == "plants.txt"
    assert result.char_start == 0 and result.char_end == len(result.text)
    assert result.keyword_rank == 1 and result.semantic_rank == 1
    assert result.collection == "science" and result.metadata == {"kind": "fact"}
    assert set(response.timing_ms) == {"embedding_ms", "sql_ms"}


# --- Filters ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_filters_apply_in_every_mode(corpus: Any, ingest: Any, mode: Mode) -> None:
    other = CollectionFactory.create(slug="elsewhere", is_public=True)
    (outsider,) = ingest(
        other,
        {"cats2.txt": "Cats eat fish too, said the other collection."},
        metadata={"kind": "other"},
    )
    query = "cats eat fish"
    base = _titles(search(SearchParams(query=query, mode=mode, top_k=50), user=None))
    assert "cats2.txt" in base
    by_collection = search(
        SearchParams(query=query, mode=mode, filters=Filters(collections=["science"])), user=None
    )
    assert "cats2.txt" not in _titles(by_collection) and by_collection.total > 0
    by_metadata = search(
        SearchParams(query=query, mode=mode, filters=Filters(metadata={"kind": "other"})), user=None
    )
    assert _titles(by_metadata) == ["cats2.txt"]
    by_any = search(
        SearchParams(
            query=query, mode=mode, filters=Filters(metadata_any={"kind": ["other", "x"]})
        ),
        user=None,
    )
    assert _titles(by_any) == ["cats2.txt"]
    by_document = search(
        SearchParams(query=query, mode=mode, filters=Filters(documents=[outsider.pk])), user=None
    )
    assert _titles(by_document) == ["cats2.txt"]
    by_mime = search(
        SearchParams(query=query, mode=mode, filters=Filters(mime_types=["application/pdf"])),
        user=None,
    )
    assert by_mime.total == 0


def test_date_filters(corpus: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    past = search(
        SearchParams(query="cats", filters=Filters(created_before=now - timedelta(days=1))),
        user=None,
    )
    assert past.total == 0
    recent = search(
        SearchParams(query="cats", filters=Filters(created_after=now - timedelta(days=1))),
        user=None,
    )
    assert recent.total > 0


def test_filtered_semantic_search_still_returns_full_top_k(db: None, ingest: Any) -> None:
    """The HNSW scan meets mostly filtered-out rows; iterative scans keep it full."""
    noise = CollectionFactory.create(slug="noise", is_public=True)
    wanted = CollectionFactory.create(slug="wanted", is_public=True)
    ingest(
        noise,
        {
            f"n{i}.txt": f"Cats and kittens, note {i}: cats purr and cats eat fish."
            for i in range(60)
        },
    )
    ingest(wanted, {f"w{i}.txt": f"Record {i} about tax law and invoices." for i in range(12)})
    params = SearchParams(
        query="cats eat fish",
        mode="semantic",
        top_k=10,
        semantic_depth=10,
        filters=Filters(collections=["wanted"]),
    )
    response = search(params, user=None)
    assert len(response.results) == 10
    assert {r.collection for r in response.results} == {"wanted"}


# --- Options ---------------------------------------------------------------------------


def test_pagination_min_score_group_by_document(db: None, ingest: Any) -> None:
    collection = CollectionFactory.create(is_public=True)
    long = "\n\n".join(
        f"Section {i}. Enzymes catalyse reaction {i} in the cell." * 12 for i in range(6)
    )
    ingest(collection, {"long.txt": long, "short.txt": "Enzymes are proteins."})
    first = search(SearchParams(query="enzymes", top_k=2), user=None)
    second = search(SearchParams(query="enzymes", top_k=2, offset=2), user=None)
    assert len(first.results) == 2 and first.total > 4
    assert not {r.chunk_id for r in first.results} & {r.chunk_id for r in second.results}
    grouped = search(SearchParams(query="enzymes", top_k=10, group_by_document=True), user=None)
    assert sorted(r.source_name for r in grouped.results) == ["long.txt", "short.txt"]
    threshold = first.results[0].score
    strict = search(SearchParams(query="enzymes", min_score=threshold), user=None)
    assert all(r.score >= threshold for r in strict.results) and strict.total >= 1


def test_neighbors_and_mmr(db: None, ingest: Any) -> None:
    collection = CollectionFactory.create(is_public=True)
    text = "\n\n".join(
        f"Part {i}. "
        + " ".join(f"Glaciers retreat quickly in region {i} sentence {j}." for j in range(10))
        for i in range(5)
    )
    ingest(
        collection,
        {"glaciers.txt": text, "dup1.txt": "Glaciers melt.", "dup2.txt": "Glaciers melt!"},
    )
    response = search(SearchParams(query="glaciers region 2", top_k=3, neighbors=1), user=None)
    result = next(r for r in response.results if r.source_name == "glaciers.txt")
    ordinals = {n["ordinal"] for n in result.neighbors}
    assert ordinals and ordinals <= {result.ordinal - 1, result.ordinal + 1}
    plain = search(SearchParams(query="glaciers melt", top_k=2), user=None)
    diverse = search(SearchParams(query="glaciers melt", top_k=2, mmr_lambda=0.3), user=None)
    assert sorted(r.source_name for r in plain.results) == ["dup1.txt", "dup2.txt"]
    assert len({r.source_name for r in diverse.results} & {"dup1.txt", "dup2.txt"}) == 1


def test_top_k_of_100(db: None, ingest: Any) -> None:
    collection = CollectionFactory.create(is_public=True)
    ingest(collection, {f"d{i}.txt": f"Volcano report number {i}." for i in range(110)})
    response = search(SearchParams(query="volcano report", top_k=100), user=None)
    assert len(response.results) == 100


# --- Access ----------------------------------------------------------------------------


def test_anonymous_searches_public_collections_only(db: None, ingest: Any) -> None:
    private = CollectionFactory.create(is_public=False, owner=UserFactory.create())
    public = CollectionFactory.create(is_public=True)
    ingest(private, {"secret.txt": "The secret launch code is penguin."})
    ingest(public, {"open.txt": "Penguins live in the south."})
    anonymous = search(SearchParams(query="penguin launch code", top_k=10), user=None)
    assert _titles(anonymous) == ["open.txt"]
    stranger = search(
        SearchParams(query="penguin launch code", top_k=10), user=UserFactory.create()
    )
    assert _titles(stranger) == ["open.txt"]
    owner = search(SearchParams(query="penguin launch code", top_k=10), user=private.owner)
    assert set(_titles(owner)) == {"open.txt", "secret.txt"}


def test_collections_of_different_languages_search_together(db: None, ingest: Any) -> None:
    german = CollectionFactory.create(slug="de", is_public=True, search_config="german")
    english = CollectionFactory.create(slug="en", is_public=True)
    ingest(german, {"haus.txt": "Die Häuser stehen am Fluss."})
    ingest(english, {"house.txt": "The houses stand by the river."})
    # German stemming matches "Häuser" for "Häusern"; English stemming matches "houses".
    de = search(SearchParams(query="Häusern", mode="keyword"), user=None)
    assert _titles(de) == ["haus.txt"]
    both = search(SearchParams(query="Häusern houses", mode="keyword"), user=None)
    assert set(_titles(both)) == {"haus.txt", "house.txt"}


def _explain_search(params: SearchParams, user: Any) -> list[dict[str, Any]]:
    """Run a search, then EXPLAIN ANALYZE its statement; return every plan node."""
    import json

    captured: list[tuple[str, Any]] = []

    def capture(execute: Any, sql: str, sql_params: Any, many: bool, context: Any) -> Any:
        if sql.lstrip().startswith("WITH "):
            captured.append((sql, sql_params))
        return execute(sql, sql_params, many, context)

    with connection.execute_wrapper(capture):
        search(params, user=user)
    sql, sql_params = captured[-1]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, sql_params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, stack = [], [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node.get("Plans", []))
    return nodes


def _semantic_branches_run(nodes: list[dict[str, Any]]) -> dict[str, bool]:
    """Which branch of the semantic leg ran: each sits under a one-time filter on the
    scope size, and the branch whose filter is false is never executed."""
    ran = {}
    for node in nodes:
        condition = node.get("One-Time Filter", "")
        if "InitPlan" in condition:
            branch = "exact" if "<=" in condition else "index"
            ran[branch] = any(child.get("Actual Loops", 0) > 0 for child in node["Plans"])
    return ran


def test_small_scopes_rank_exactly_and_big_ones_use_the_index(corpus: Any, settings: Any) -> None:
    params = SearchParams(query="What do cats eat?", mode="semantic", top_k=5)
    exact = search(params, user=None)
    assert _semantic_branches_run(_explain_search(params, None)) == {
        "exact": True,
        "index": False,
    }
    settings.SEARCH_EXACT_MAX_CHUNKS = 0  # every scope counts as big: the HNSW branch
    indexed = search(params, user=None)
    assert _semantic_branches_run(_explain_search(params, None)) == {
        "exact": False,
        "index": True,
    }
    # On five documents the index is exact too: both branches agree.
    assert _titles(indexed) == _titles(exact)
    assert [round(r.semantic_score or 0, 5) for r in indexed.results] == [
        round(r.semantic_score or 0, 5) for r in exact.results
    ]


def test_keyword_leg_reads_only_its_collections_postings(corpus: Any, ingest: Any) -> None:
    """The keyword leg's `collection_id = X AND search_vector @@ q` is one scan of the
    (collection_id, search_vector) GIN index, not the term's postings of every collection
    ANDed with the collection's btree (6x slower for 20k chunks beside 1M: benchmarks)."""
    ingest(CollectionFactory.create(slug="other"), {"cats3.txt": "Cats eat fish and mice."})
    params = SearchParams(query="cats eat fish", mode="keyword", top_k=5)
    with CaptureQueriesContext(connection) as queries:
        response = search(replace(params, filters=Filters(collections=["science"])), user=None)
    assert _titles(response)[0] == "cats.txt" and "cats3.txt" not in _titles(response)
    statement = max((q["sql"] for q in queries.captured_queries), key=len)
    with connection.cursor() as cursor:
        # On a few rows the planner reads sequentially or through a collection btree; on a
        # big table it takes the GIN path, so that is the one to check: the btrees on
        # collection_id go for this (rolled-back) test transaction, sequential scans off.
        cursor.execute("DROP INDEX documents_chunk_collection_id_c5582089, chunk_collection_model")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    scans = [line for line in plan.splitlines() if "chunk_collection_search_gin" in line]
    assert scans, plan
    position = plan.index(scans[0])
    condition = plan[position : plan.index("\n", plan.index("Index Cond", position))]
    # At scale the same scan also carries `search_vector @@` (EXPLAIN in
    # docs/benchmarks.md); on five rows the planner rechecks the terms on the heap.
    assert "collection_id" in condition, plan

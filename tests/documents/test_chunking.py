"""The token-aware chunker and the tokenizer helpers, with the real MiniLM tokenizer.

No database: run with ``-p no:django``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.chunk_text import contextual_header
from documents.chunking import ChunkSpan, chunk_document
from documents.extraction.types import Block, ExtractedText
from documents.sentences import sentence_spans
from documents.tokenizer import (
    MODEL_MAX_TOKENS,
    SPECIAL_TOKENS,
    count_tokens,
    count_tokens_batch,
    get_tokenizer,
)

# --- helpers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    text: str
    is_heading: bool = False
    page: int | None = None
    heading_path: tuple[str, ...] = ()


def build(parts: list[Part], title: str | None = None) -> ExtractedText:
    """An ExtractedText whose blocks are ``parts`` joined by blank lines, offsets exact."""
    text = ""
    blocks: list[Block] = []
    for part in parts:
        if blocks:
            text += "\n\n"
        blocks.append(
            Block(
                start=len(text),
                end=len(text) + len(part.text),
                page=part.page,
                heading_path=part.heading_path,
                is_heading=part.is_heading,
            )
        )
        text += part.text
    return ExtractedText(text=text, mime_type="text/plain", blocks=blocks, title=title)


def plain(text: str) -> ExtractedText:
    return build([Part(text)])


def check_invariants(extracted: ExtractedText, chunks: list[ChunkSpan], max_tokens: int) -> None:
    """What every chunking must satisfy, whatever the input."""
    text = extracted.text
    starts = [c.start for c in chunks]
    assert starts == sorted(set(starts)), "starts must be strictly increasing"
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text)
        piece = text[chunk.start : chunk.end]
        assert piece == piece.strip(), f"chunk starts or ends with whitespace: {piece!r}"
        assert chunk.token_count <= max_tokens
        if chunk.first_page is not None:
            assert chunk.last_page is not None and chunk.first_page <= chunk.last_page
        else:
            assert chunk.last_page is None
    # Exact counts of the real slices, in one batch.
    counts = count_tokens_batch([text[c.start : c.end] for c in chunks])
    assert counts == [c.token_count for c in chunks]
    # Coverage: every non-whitespace character lies in some chunk.
    covered = bytearray(len(text) + 1)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"uncovered characters at {missing[:10]}: {text[missing[0]]!r}"


def sentences(n: int, prefix: str = "Sentence") -> str:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa"]
    return " ".join(
        f"{prefix} {i} mentions {words[i % 8]} and {words[(i * 3) % 8]} in passing."
        for i in range(n)
    )


# --- tokenizer -----------------------------------------------------------------------------


def test_tokenizer_counts_without_special_tokens_and_without_truncation() -> None:
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0
    # The shipped tokenizer.json truncates at 128 and pads: both must be off.
    long_text = "word " * 1000
    assert count_tokens(long_text) == 1000
    assert count_tokens_batch(["hello world", "", long_text]) == [2, 0, 1000]
    assert count_tokens_batch([]) == []
    assert get_tokenizer() is get_tokenizer()
    assert MODEL_MAX_TOKENS == 256 and SPECIAL_TOKENS == 2


# --- chunk_document: examples --------------------------------------------------------------


def test_empty_and_blank_texts_give_no_chunks() -> None:
    assert chunk_document(ExtractedText(text="", mime_type="text/plain")) == []
    assert chunk_document(plain("  \n\n \t ")) == []


def test_short_text_is_one_chunk_covering_it() -> None:
    extracted = plain("  A short text. It has two sentences.\n")
    chunks = chunk_document(extracted)
    assert len(chunks) == 1
    (chunk,) = chunks
    assert extracted.text[chunk.start : chunk.end] == "A short text. It has two sentences."
    assert chunk.token_count == count_tokens("A short text. It has two sentences.")
    assert chunk.heading_path == ()
    assert (chunk.first_page, chunk.last_page) == (None, None)


def test_text_without_blocks_is_still_chunked_and_covered() -> None:
    text = sentences(40) + "\n\n" + sentences(40, "Other")
    extracted = ExtractedText(text=text, mime_type="text/plain")
    chunks = chunk_document(extracted, max_tokens=64, overlap_tokens=8)
    assert len(chunks) > 2
    check_invariants(extracted, chunks, 64)


def test_headings_start_new_chunks_with_their_heading_path() -> None:
    extracted = build(
        [
            Part("Introduction", is_heading=True, heading_path=("Introduction",)),
            Part("Some opening words.", heading_path=("Introduction",)),
            Part("Methods", is_heading=True, heading_path=("Methods",)),
            # An extractor that leaves the heading out of its own path: it is added.
            Part("Participants", is_heading=True, heading_path=("Methods",)),
            Part("We asked people.", heading_path=("Methods", "Participants")),
            Part("Results", is_heading=True, heading_path=("Results",)),
            Part("It worked.", heading_path=("Results",)),
        ]
    )
    chunks = chunk_document(extracted)
    texts = [extracted.text[c.start : c.end] for c in chunks]
    assert texts == [
        "Introduction\n\nSome opening words.",
        # Consecutive headings stay together, with the content that follows them.
        "Methods\n\nParticipants\n\nWe asked people.",
        "Results\n\nIt worked.",
    ]
    assert [c.heading_path for c in chunks] == [
        ("Introduction",),
        ("Methods", "Participants"),
        ("Results",),
    ]
    check_invariants(extracted, chunks, 200)


def test_heading_is_never_left_alone_at_the_end_of_a_chunk() -> None:
    parts = [Part(sentences(3, "Lead"))]
    for n in range(6):
        name = f"Section {n}"
        parts.append(Part(name, is_heading=True, heading_path=(name,)))
        # Paragraphs that each almost fill a chunk on their own.
        parts.append(Part(sentences(6 + n, f"Body{n}"), heading_path=(name,)))
    extracted = build(parts)
    chunks = chunk_document(extracted, max_tokens=100, overlap_tokens=10)
    check_invariants(extracted, chunks, 100)
    heading_blocks = [b for b in extracted.blocks if b.is_heading]
    for chunk in chunks:
        for block in heading_blocks:
            assert chunk.end != block.end, "a heading ends a chunk"
            if chunk.start < block.start < chunk.end:
                pytest.fail("a heading in the middle of a chunk: it should start a new one")
    starting = {c.start for c in chunks}
    assert all(b.start in starting for b in heading_blocks)


def test_heading_before_a_giant_sentence_takes_its_first_words() -> None:
    heading = "A rather long heading that takes up a good part of the budget"
    body = " ".join(f"word{i % 7}" for i in range(500))
    extracted = build(
        [
            Part(heading, is_heading=True, heading_path=(heading,)),
            Part(body, heading_path=(heading,)),
        ]
    )
    chunks = chunk_document(extracted, max_tokens=32, overlap_tokens=4)
    check_invariants(extracted, chunks, 32)
    first = extracted.text[chunks[0].start : chunks[0].end]
    assert first.startswith(heading + "\n\nword0 word1")
    assert all(c.heading_path == (heading,) for c in chunks)


def test_long_paragraph_is_split_at_sentence_boundaries() -> None:
    text = sentences(30)
    extracted = plain(text)
    chunks = chunk_document(extracted, max_tokens=64, overlap_tokens=0)
    assert len(chunks) > 3
    check_invariants(extracted, chunks, 64)
    for chunk in chunks:
        piece = text[chunk.start : chunk.end]
        assert piece.startswith("Sentence "), piece
        assert piece.endswith(" in passing."), piece
    # Without overlap the chunks do not share text.
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start > before.end


def test_sentence_splitter_keeps_abbreviations_and_breaks_lines() -> None:
    text = (
        "We used e.g. the standard kit. Values were approx. five units. 3 runs failed! "
        '"Quoted." (Aside.) Über alles? 中文句子。日本語\n'
        "a list item without a stop\nanother item"
    )
    assert [text[s:e] for s, e in sentence_spans(text, 0, len(text))] == [
        "We used e.g. the standard kit.",
        "Values were approx. five units.",
        "3 runs failed!",
        '"Quoted."',
        "(Aside.)",
        "Über alles?",
        "中文句子。",
        "日本語",
        "a list item without a stop",
        "another item",
    ]
    # The chunker cuts a long paragraph only there.
    extracted = plain(text)
    chunks = chunk_document(extracted, max_tokens=16, overlap_tokens=0)
    check_invariants(extracted, chunks, 16)
    assert len(chunks) > 1
    boundaries = {s for s, _ in sentence_spans(text, 0, len(text))}
    assert all(c.start in boundaries for c in chunks)


def test_giant_sentence_is_split_between_words_under_the_limit() -> None:
    vocabulary = ["protein", "unbelievably", "x", "receptor", "kinase", "über", "cell", "42"]
    text = " ".join(vocabulary[(i * 7 + i // 3) % len(vocabulary)] for i in range(5000))
    extracted = plain(text)
    chunks = chunk_document(extracted, max_tokens=200, overlap_tokens=30)
    check_invariants(extracted, chunks, 200)
    assert len(chunks) >= count_tokens(text) // 200
    for chunk in chunks:
        # Cut between words: the character before and after a chunk is a space (or nothing).
        assert chunk.start == 0 or text[chunk.start - 1] == " "
        assert chunk.end == len(text) or text[chunk.end] == " "
    assert all(c.token_count > 150 for c in chunks[:-1])  # packed, not shredded


def test_word_longer_than_the_budget_is_cut_inside_it() -> None:
    # Lowercase letters without spaces, under the 100-character [UNK] limit: many wordpieces.
    word = "qzxv" * 24
    text = " ".join([word] * 20)
    extracted = plain(text)
    assert count_tokens(word) > 16
    chunks = chunk_document(extracted, max_tokens=16, overlap_tokens=4)
    check_invariants(extracted, chunks, 16)


def test_consecutive_chunks_overlap_by_whole_trailing_sentences() -> None:
    text = sentences(40)
    extracted = plain(text)
    chunks = chunk_document(extracted, max_tokens=80, overlap_tokens=30)
    check_invariants(extracted, chunks, 80)
    assert len(chunks) > 3
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.start < before.end, "consecutive chunks should overlap"
        shared = text[after.start : before.end]
        assert 0 < count_tokens(shared) <= 30
        # Whole sentences: the overlap starts a sentence and ends where the previous chunk did.
        assert shared.startswith("Sentence ") and shared.endswith(" in passing.")


def test_overlap_uses_trailing_tokens_when_sentences_are_too_long() -> None:
    text = " ".join(f"word{i % 10}" for i in range(2000))  # one sentence, no punctuation
    extracted = plain(text)
    chunks = chunk_document(extracted, max_tokens=100, overlap_tokens=20)
    check_invariants(extracted, chunks, 100)
    for before, after in zip(chunks, chunks[1:], strict=False):
        shared = text[after.start : before.end]
        assert after.start < before.end
        assert 0 < count_tokens(shared) <= 20
        assert text[after.start - 1] == " "  # starts at a word


def test_overlap_never_crosses_a_heading() -> None:
    extracted = build(
        [
            Part("First", is_heading=True, heading_path=("First",)),
            Part(sentences(20, "One"), heading_path=("First",)),
            Part("Second", is_heading=True, heading_path=("Second",)),
            Part(sentences(20, "Two"), heading_path=("Second",)),
        ]
    )
    chunks = chunk_document(extracted, max_tokens=64, overlap_tokens=20)
    check_invariants(extracted, chunks, 64)
    second = extracted.blocks[2].start
    assert any(c.start == second for c in chunks)
    for chunk in chunks:
        assert not (chunk.start < second < chunk.end), "a chunk straddles the heading"
        path = ("First",) if chunk.start < second else ("Second",)
        assert chunk.heading_path == path


def test_pages_are_recorded() -> None:
    parts = [Part(sentences(4, f"Page{p}"), page=p) for p in (1, 2, 3)]
    extracted = build(parts)
    together = chunk_document(extracted, max_tokens=254, overlap_tokens=0)
    assert len(together) == 1
    assert (together[0].first_page, together[0].last_page) == (1, 3)

    apart = chunk_document(extracted, max_tokens=60, overlap_tokens=0)
    check_invariants(extracted, apart, 60)
    assert [(c.first_page, c.last_page) for c in apart] == [(1, 1), (2, 2), (3, 3)]

    # With overlap a chunk may reach back into the previous page.
    overlapping = chunk_document(extracted, max_tokens=60, overlap_tokens=25)
    check_invariants(extracted, overlapping, 60)
    assert overlapping[0].first_page == 1 and overlapping[-1].last_page == 3
    assert any(c.first_page != c.last_page for c in overlapping)


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"),
    [(15, 0), (0, 0), (255, 0), (256, 10), (100, -1), (100, 50), (16, 8), (200, 200)],
)
def test_invalid_arguments_raise(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError, match="tokens"):
        chunk_document(plain("Some text."), max_tokens=max_tokens, overlap_tokens=overlap_tokens)


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(16, 0), (16, 7), (254, 126)])
def test_boundary_arguments_are_accepted(max_tokens: int, overlap_tokens: int) -> None:
    extracted = plain(sentences(30))
    chunks = chunk_document(extracted, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    check_invariants(extracted, chunks, max_tokens)


def test_invalid_arguments_raise_even_for_empty_text() -> None:
    with pytest.raises(ValueError):
        chunk_document(ExtractedText(text="", mime_type="text/plain"), max_tokens=300)


def test_blocks_with_surrounding_whitespace_and_uncovered_text() -> None:
    # Offsets that include whitespace, and text no block claims: both must be handled.
    text = "Stray preface.\n\n  Title  \n\nBody text here.\n\nTrailing stray text."
    blocks = [
        Block(start=16, end=25, is_heading=True, heading_path=("Title",), page=1),
        Block(start=27, end=42, heading_path=("Title",), page=1),
    ]
    extracted = ExtractedText(text=text, mime_type="text/plain", blocks=blocks)
    chunks = chunk_document(extracted)
    check_invariants(extracted, chunks, 200)
    assert [text[c.start : c.end] for c in chunks] == [
        "Stray preface.",
        "Title  \n\nBody text here.\n\nTrailing stray text.",
    ]
    assert chunks[1].heading_path == ("Title",)


def test_large_document_sanity() -> None:
    # A performance smoke test without timing: many blocks, pages and sections.
    parts: list[Part] = []
    for section in range(60):
        name = f"Section {section}"
        parts.append(Part(name, is_heading=True, page=section // 5 + 1, heading_path=(name,)))
        for paragraph in range(8):
            parts.append(
                Part(
                    sentences(4 + paragraph * 2, f"S{section}p{paragraph}"),
                    page=section // 5 + 1,
                    heading_path=(name,),
                )
            )
    extracted = build(parts)
    assert len(extracted.text) > 200_000
    chunks = chunk_document(extracted)
    check_invariants(extracted, chunks, 200)
    assert {c.heading_path for c in chunks} == {(f"Section {n}",) for n in range(60)}


# --- contextual header ---------------------------------------------------------------------


def test_contextual_header() -> None:
    assert (
        contextual_header(title="Report", heading_path=("Methods", "Data"), max_tokens=50)
        == "Report > Methods > Data\n\n"
    )
    # The title repeated as the first heading is said once; blanks are dropped.
    assert (
        contextual_header(title=" Report ", heading_path=("report", "  ", "Data"), max_tokens=50)
        == "Report > Data\n\n"
    )
    assert contextual_header(title=None, heading_path=(), max_tokens=50) == ""
    assert contextual_header(title="", heading_path=("",), max_tokens=50) == ""
    assert contextual_header(title="Report", heading_path=(), max_tokens=0) == ""
    with pytest.raises(ValueError):
        contextual_header(title="Report", heading_path=(), max_tokens=-1)


def test_contextual_header_is_truncated_at_token_boundaries() -> None:
    long_heading = "A remarkably verbose heading about unbelievably many things " * 5
    for budget in (1, 3, 7, 12, 40):
        header = contextual_header(title="Report", heading_path=(long_heading,), max_tokens=budget)
        assert header.endswith("\n\n")
        assert 0 < count_tokens(header) <= budget
        assert ("Report > " + " ".join(long_heading.split())).startswith(header.rstrip("\n"))
        assert not header.rstrip("\n").endswith(">")
    # "unbelievably" is five wordpieces: rather than cut it, the header stops before it.
    assert count_tokens("Report > A remarkably verbose heading about unbelievably") > 12
    assert (
        contextual_header(title="Report", heading_path=(long_heading,), max_tokens=12)
        == "Report > A remarkably verbose heading about\n\n"
    )


def test_embedding_text_fits_the_model_with_the_header() -> None:
    extracted = build(
        [
            Part("Results", is_heading=True, heading_path=("Results",)),
            Part(sentences(40), heading_path=("Results",)),
        ],
        title="A study of things",
    )
    for chunk in chunk_document(extracted, max_tokens=254, overlap_tokens=0):
        budget = MODEL_MAX_TOKENS - SPECIAL_TOKENS - chunk.token_count
        header = contextual_header(
            title=extracted.title, heading_path=chunk.heading_path, max_tokens=budget
        )
        text = extracted.text[chunk.start : chunk.end]
        full = header + text
        assert count_tokens(full) + SPECIAL_TOKENS <= MODEL_MAX_TOKENS


# --- properties ----------------------------------------------------------------------------

WORDS = [
    "the", "protein", "Binds", "unbelievably", "receptor", "x", "3.5", "mg/kg", "(p<0.05)",
    "e.g.", "U.S.", "naïve", "Zürich", "café", "İstanbul", "ﬁnal", "中文", "字", "日本語です",
    "😀", "—", "–", "\u00a0", "a\u0301", "zero\u200bwidth", "\ufeff", "x\x00y", "\x07",
    "antidisestablishmentarianism", "qzxv" * 30, "https://example.org/a?b=c", "α-helix",
    "Ω", "١٢٣", "שלום", "Привет", "...", "?!", "\"Quoted.\"", "(aside)",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "  ", ". ", "! ", "? ", ", ", "\n", " \n ", "\t", "。", "\r\n"]


@st.composite
def fragments(draw: st.DrawFn, max_words: int) -> str:
    words = draw(
        st.lists(st.sampled_from(WORDS) | st.text(min_size=1, max_size=6), max_size=max_words)
    )
    out: list[str] = []
    for word in words:
        out.append(word)
        out.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(out)


@st.composite
def long_paragraph(draw: st.DrawFn) -> str:
    """Hundreds of words from a drawn seed: too many to draw one by one within Hypothesis's
    data budget. Without punctuation it is a single giant sentence."""
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    separators = SEPARATORS if draw(st.booleans()) else [" "]
    count = rng.randint(100, 1500)
    return "".join(rng.choice(WORDS) + rng.choice(separators) for _ in range(count))


@st.composite
def documents(draw: st.DrawFn) -> ExtractedText:
    parts: list[Part] = []
    stack: list[str] = []
    page = draw(st.sampled_from([None, 1]))
    for _ in range(draw(st.integers(min_value=0, max_value=10))):
        if page is not None and draw(st.booleans()):
            page += draw(st.integers(min_value=0, max_value=2))
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            title = draw(fragments(6)) or "Heading"
            level = draw(st.integers(min_value=1, max_value=3))
            stack = [*stack[: level - 1], " ".join(title.split())]
            parts.append(Part(title, True, page, tuple(stack)))
        else:
            # Mostly short paragraphs; sometimes one that needs cutting at sentences or tokens.
            long = draw(st.integers(min_value=0, max_value=3)) == 0
            body = draw(long_paragraph() if long else fragments(40))
            parts.append(Part(body, False, page, tuple(stack)))
    return build(parts, title=draw(st.none() | st.just("Title")))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    extracted=documents(),
    max_tokens=st.integers(min_value=16, max_value=254),
    overlap_fraction=st.floats(min_value=0.0, max_value=0.99),
)
def test_chunking_properties(
    extracted: ExtractedText, max_tokens: int, overlap_fraction: float
) -> None:
    overlap_tokens = int(overlap_fraction * (max_tokens // 2))
    chunks = chunk_document(extracted, max_tokens=max_tokens, overlap_tokens=overlap_tokens)
    check_invariants(extracted, chunks, max_tokens)
    if extracted.text.strip():
        assert chunks
    text = extracted.text
    # Blocks with text, as (start, end) without surrounding whitespace.
    trimmed = []
    for block in extracted.blocks:
        content = text[block.start : block.end]
        if content.strip():
            start = block.start + len(content) - len(content.lstrip())
            trimmed.append((start, start + len(content.strip()), block))
    paths = {block.heading_path for block in extracted.blocks} | {()}
    for chunk in chunks:
        touched = [b.page for s, e, b in trimmed if s < chunk.end and e > chunk.start]
        pages = [p for p in touched if p is not None]
        assert chunk.first_page == (min(pages) if pages else None)
        assert chunk.last_page == (max(pages) if pages else None)
        assert chunk.heading_path in paths


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=600), max_tokens=st.integers(min_value=16, max_value=64))
def test_arbitrary_text_without_blocks(text: str, max_tokens: int) -> None:
    extracted = ExtractedText(text=text, mime_type="text/plain")
    chunks = chunk_document(extracted, max_tokens=max_tokens, overlap_tokens=max_tokens // 4)
    check_invariants(extracted, chunks, max_tokens)
    assert bool(chunks) == bool(text.strip())

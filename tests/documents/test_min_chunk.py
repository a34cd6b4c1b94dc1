"""No junk chunks (CHUNK_MIN_TOKENS): a chunk under the minimum joins a neighbour of its
section; a heading alone is never a chunk; chunks stay exact spans. Real tokenizer, no
database."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from documents.chunk_text import ChunkingConfig, chunking_settings_fingerprint
from documents.chunking import chunk_document
from documents.extraction.types import Block, ExtractedText
from documents.tokenizer import count_tokens
from tests.documents.test_chunking import Part, build, check_invariants, documents, sentences


def _texts(extracted: ExtractedText, **kwargs: Any) -> list[str]:
    return [extracted.text[c.start : c.end] for c in chunk_document(extracted, **kwargs)]


def test_a_short_tail_of_a_section_starts_earlier_or_joins() -> None:
    extracted = build(
        [
            Part("Setup", is_heading=True, heading_path=("Setup",)),
            Part(sentences(9), heading_path=("Setup",)),
            Part("Done here.", heading_path=("Setup",)),
        ]
    )
    before = chunk_document(extracted, max_tokens=64, overlap_tokens=0)
    assert [c.token_count for c in before] == [64, 21]
    # The packer filled the first chunk, so the two cannot join: the tail starts earlier,
    # at a sentence of the first chunk, until it holds the minimum (here 64 // 2).
    after = chunk_document(extracted, max_tokens=64, overlap_tokens=0, min_tokens=40)
    assert after[0] == before[0] and after[1].end == before[1].end
    assert after[1].start < before[0].end and 32 <= after[1].token_count <= 64
    assert extracted.text[after[1].start :].startswith("Sentence ")
    check_invariants(extracted, after, 64)
    # With room for both, they join.
    joined = chunk_document(extracted, max_tokens=100, overlap_tokens=0, min_tokens=40)
    assert len(joined) == 1 and joined[0].heading_path == ("Setup",)
    check_invariants(extracted, joined, 100)


def test_short_sections_join_within_their_section_but_not_across_top_level_ones() -> None:
    windows = ("Install", "On Windows")
    linux = ("Install", "On Linux")
    extracted = build(
        [
            Part("Install", is_heading=True, heading_path=("Install",)),
            Part(sentences(12, "Intro"), heading_path=("Install",)),
            Part("On Windows", is_heading=True, heading_path=windows),
            Part(sentences(5, "Windows"), heading_path=windows),
            Part("On Linux", is_heading=True, heading_path=linux),
            Part("Use your distribution's package.", heading_path=linux),
            Part("Usage", is_heading=True, heading_path=("Usage",)),
            Part("Run it.", heading_path=("Usage",)),
        ]
    )
    plain = _texts(extracted, max_tokens=200, overlap_tokens=0)
    assert [p.split("\n")[0] for p in plain] == ["Install", "On Windows", "On Linux", "Usage"]
    chunks = chunk_document(extracted, max_tokens=200, overlap_tokens=0, min_tokens=40)
    # "On Linux" joins its sibling "On Windows" under the section they share; the intro
    # was too long to take them; "Usage" is another top-level section: it stays apart.
    assert [extracted.text[c.start : c.end] for c in chunks] == [
        plain[0],
        plain[1] + "\n\n" + plain[2],
        plain[3],
    ]
    assert [c.heading_path for c in chunks] == [("Install",), ("Install",), ("Usage",)]

    # Short enough, the intro takes its subsections too.
    short = build(
        [
            Part("Install", is_heading=True, heading_path=("Install",)),
            Part("Run the installer.", heading_path=("Install",)),
            Part("On Windows", is_heading=True, heading_path=windows),
            Part("Use the MSI package.", heading_path=windows),
            Part("On Linux", is_heading=True, heading_path=linux),
            Part("Use your distribution's package.", heading_path=linux),
        ]
    )
    (chunk,) = chunk_document(short, max_tokens=200, overlap_tokens=0, min_tokens=40)
    assert chunk.heading_path == ("Install",)


def test_a_heading_alone_at_the_end_joins_the_chunk_before() -> None:
    extracted = build(
        [
            Part("Notes", is_heading=True, heading_path=("Notes",)),
            Part(sentences(4), heading_path=("Notes",)),
            Part("Appendix", is_heading=True, heading_path=("Appendix",)),
        ]
    )
    assert len(chunk_document(extracted)) == 2
    chunks = chunk_document(extracted, min_tokens=40)
    assert len(chunks) == 1 and chunks[0].heading_path == ("Notes",)
    check_invariants(extracted, chunks, 200)


def test_a_short_document_is_its_one_chunk() -> None:
    extracted = build([Part("Hi", is_heading=True, heading_path=("Hi",)), Part("Short.")])
    chunks = chunk_document(extracted, min_tokens=40)
    assert len(chunks) == 1 and chunks[0].token_count < 40


def test_a_short_piece_of_a_table_starts_at_a_whole_row_and_keeps_its_header() -> None:
    fruit, tools = "Fruit | Price | Origin", "Tool | Price | Maker"
    parts = [
        Part("Prices", is_heading=True, heading_path=("Prices",)),
        Part(fruit, heading_path=("Prices",)),
    ]
    parts += [
        Part(f"{name} | {i} | Kent", heading_path=("Prices", fruit))
        for i, name in enumerate(["Apple", "Pear", "Plum", "Quince", "Cherry"])
    ]
    parts += [Part(tools, heading_path=("Prices",))]
    parts += [Part(f"{name} | {i} | Acme", heading_path=("Prices", tools))
              for i, name in enumerate(["Spade", "Rake", "Hoe", "Fork", "Shears"])]  # fmt: skip
    built = build(parts)
    blocks = [
        Block(b.start, b.end, None, b.heading_path, b.is_heading, table_row=i > 0)
        for i, b in enumerate(built.blocks)
    ]
    extracted = ExtractedText(text=built.text, mime_type="text/csv", blocks=blocks)
    before = chunk_document(extracted, max_tokens=24, overlap_tokens=0)
    assert extracted.text[before[-1].start : before[-1].end] == "Shears | 4 | Acme"
    chunks = chunk_document(extracted, max_tokens=24, overlap_tokens=0, min_tokens=12)
    check_invariants(extracted, chunks, 24)
    assert chunks[:-1] == before[:-1]
    last = chunks[-1]
    assert extracted.text[last.start : last.end] == "Fork | 3 | Acme\n\nShears | 4 | Acme"
    assert last.heading_path == ("Prices", tools)
    row_starts = {b.start for b in blocks}
    assert all(c.start in row_starts for c in chunks)


def test_chunks_under_the_minimum_have_no_neighbour_they_could_join() -> None:
    parts: list[Part] = []
    for n in range(8):
        name = f"Part {n}"
        parts.append(Part(name, is_heading=True, heading_path=(name,)))
        for k in range(n % 3 + 1):
            parts.append(Part(sentences(1 + (n * k) % 9, f"P{n}x{k}"), heading_path=(name,)))
    extracted = build(parts)
    chunks = chunk_document(extracted, max_tokens=64, overlap_tokens=10, min_tokens=30)
    check_invariants(extracted, chunks, 64)
    _assert_no_joinable_pair(extracted, chunks, 64, 30)


def _assert_no_joinable_pair(
    extracted: ExtractedText, chunks: list[Any], max_tokens: int, min_tokens: int
) -> None:
    for before, after in zip(chunks, chunks[1:], strict=False):
        if min(before.token_count, after.token_count) >= min_tokens:
            continue
        same = before.heading_path == after.heading_path
        if not same and (
            not before.heading_path or before.heading_path[:1] != after.heading_path[:1]
        ):
            continue  # no section in common
        joined = extracted.text[before.start : after.end]
        assert count_tokens(joined) > max_tokens or len(joined) > max_tokens * 12


def test_the_minimum_is_part_of_the_chunking_fingerprint() -> None:
    base = ChunkingConfig(max_tokens=200, overlap_tokens=30, context_header=True,
                          header_max_tokens=32)  # fmt: skip
    other = ChunkingConfig(
        max_tokens=200, overlap_tokens=30, context_header=True, header_max_tokens=32, min_tokens=40
    )
    assert chunking_settings_fingerprint(base) != chunking_settings_fingerprint(other)


def test_a_negative_minimum_is_refused_and_a_large_one_lowered() -> None:
    extracted = build([Part(sentences(30))])
    with pytest.raises(ValueError, match="min_tokens"):
        chunk_document(extracted, min_tokens=-1)
    # More than half the maximum would join everything: it is lowered to max_tokens // 2.
    chunks = chunk_document(extracted, max_tokens=64, overlap_tokens=0, min_tokens=1000)
    check_invariants(extracted, chunks, 64)
    assert len(chunks) > 1


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    extracted=documents(),
    max_tokens=st.integers(min_value=16, max_value=254),
    overlap_fraction=st.floats(min_value=0.0, max_value=0.99),
    min_fraction=st.floats(min_value=0.0, max_value=0.5),
)
def test_joining_keeps_the_chunking_properties(
    extracted: ExtractedText, max_tokens: int, overlap_fraction: float, min_fraction: float
) -> None:
    overlap_tokens = int(overlap_fraction * (max_tokens // 2))
    min_tokens = int(min_fraction * max_tokens)
    chunks = chunk_document(
        extracted, max_tokens=max_tokens, overlap_tokens=overlap_tokens, min_tokens=min_tokens
    )
    check_invariants(extracted, chunks, max_tokens)
    assert bool(chunks) == bool(extracted.text.strip())
    # A joined chunk's path is the section its parts share: a block's path or a prefix.
    paths = {block.heading_path[:n] for block in extracted.blocks for n in range(8)}
    assert all(chunk.heading_path in paths | {()} for chunk in chunks)
    if min_tokens:
        _assert_no_joinable_pair(extracted, chunks, max_tokens, min_tokens)

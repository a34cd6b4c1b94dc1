"""What a chunk says besides its own text, in one place: the contextual header the model
reads before it, the keyword context the BM25 leg indexes with it, and the fingerprint of
every setting that shapes chunks.

The pipeline, the benchmarks and the evaluation all build a chunk's texts here, so an
embedding made at ingestion and one recomputed elsewhere agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Self

from django.conf import settings

from documents.embedding import ModelSpec, default_spec
from documents.tokenizer import (
    SPECIAL_TOKENS,
    count_tokens,
    get_tokenizer,
    model_tokenizer,
    model_window,
)

# The keyword context (title > headings) is indexed, never embedded: a generous bound.
CONTEXT_MAX_TOKENS = 64
_SEPARATOR = " > "


@dataclass(frozen=True)
class ChunkText:
    """A chunk's texts: ``embedded`` is what the model reads (``header`` + the chunk's
    own text); ``context`` is the title and headings the keyword leg indexes with it."""

    header: str
    context: str
    embedded: str


@dataclass(frozen=True)
class ChunkingConfig:
    """Every setting that shapes chunks and their vectors besides the model. The pipeline
    reads it from settings once per run; the evaluation passes its own variants in (the
    header on or off) instead of changing settings at run time."""

    max_tokens: int
    overlap_tokens: int
    context_header: bool
    header_max_tokens: int
    # Tokens the model's prefix ("passage: ") takes of its window (for_model() sets it).
    prefix_tokens: int = 0
    min_tokens: int = 0  # smaller chunks join a neighbour (documents/chunking.py)

    @classmethod
    def from_settings(cls) -> Self:
        return cls(
            max_tokens=settings.CHUNK_MAX_TOKENS,
            overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
            context_header=settings.CHUNK_CONTEXT_HEADER,
            header_max_tokens=settings.CHUNK_CONTEXT_HEADER_MAX_TOKENS,
            min_tokens=settings.CHUNK_MIN_TOKENS,
        )


def for_model(config: ChunkingConfig, spec: ModelSpec) -> ChunkingConfig:
    """``config`` fitted to ``spec``'s window: the prefix's tokens are set aside and a chunk
    never outgrows what the model reads (a 128-token model gets smaller chunks; a bigger
    window does not make them bigger: CHUNK_MAX_TOKENS is the size we want)."""
    with model_context(spec):
        prefix = count_tokens(spec.passage_prefix) if spec.passage_prefix else 0
    room = spec.max_tokens - SPECIAL_TOKENS - prefix
    overlap = config.overlap_tokens
    max_tokens = max(16, min(config.max_tokens, room))
    if overlap >= max_tokens // 2:
        overlap = max(0, max_tokens // 2 - 1)
    return replace(config, max_tokens=max_tokens, overlap_tokens=overlap, prefix_tokens=prefix)


@contextmanager
def model_context(spec: ModelSpec) -> Iterator[None]:
    """Count tokens with ``spec``'s tokenizer and window inside the block."""
    with model_tokenizer(spec.tokenizer_file(), spec.max_tokens):
        yield


def chunking_settings_fingerprint(
    config: ChunkingConfig | None = None, spec: ModelSpec | None = None
) -> str:
    """One name for every setting that shapes chunks and their vectors: the model (its
    name, backend, location, prefixes and window: int8 vectors keep the fp32 name but are
    not the same vectors), chunk size and overlap, and the contextual header. Chunks made
    under another fingerprint are stale (the pipeline's staged batches, the evaluation's
    collections)."""
    config = config or ChunkingConfig.from_settings()
    spec = spec or default_spec()
    key = "|".join(
        [
            spec.name,
            spec.backend,
            *([spec.cache_key()] if spec.location or spec.passage_prefix else []),
            str(config.max_tokens),
            str(config.overlap_tokens),
            str(config.context_header),
            str(config.header_max_tokens),
            str(config.min_tokens),
            # Extraction's own switch (HTML navigation, PDF running heads) shapes chunks too.
            str(settings.STRIP_BOILERPLATE),
        ]
    )
    return hashlib.sha256(key.encode()).hexdigest()


def content_fingerprint(
    sha256: str, config: ChunkingConfig | None = None, spec: ModelSpec | None = None
) -> str:
    """A document's content under the given settings: what its staged chunks are of."""
    settings_key = chunking_settings_fingerprint(config, spec)
    return hashlib.sha256(f"{sha256}\x1f{settings_key}".encode()).hexdigest()


def header_budget(config: ChunkingConfig | None = None) -> int:
    """Tokens the contextual header may take: the room a full chunk leaves in the model's
    window, at most the header's own maximum; 0 when the header is off."""
    config = config or ChunkingConfig.from_settings()
    if not config.context_header:
        return 0
    room = model_window() - SPECIAL_TOKENS - config.prefix_tokens - config.max_tokens
    return max(0, min(config.header_max_tokens, room))


def chunk_text(
    *,
    text: str,
    title: str | None,
    heading_path: tuple[str, ...] | list[str],
    config: ChunkingConfig | None = None,
) -> ChunkText:
    """The header, keyword context and embedded text of one chunk under ``config``
    (by default the settings)."""
    parts = _header_parts(title, tuple(heading_path))
    budget = header_budget(config)
    header = _header_line(parts, budget) if budget else ""
    # The keyword leg indexes the title and headings even when the header is not
    # embedded, so a chunk deep in a section still matches its topic; a heading the chunk
    # itself begins with is not repeated.
    if parts and text.startswith(parts[-1]):
        parts = parts[:-1]
    context = _truncate(_SEPARATOR.join(parts), CONTEXT_MAX_TOKENS) if parts else ""
    return ChunkText(header=header, context=context, embedded=header + text)


def contextual_header(*, title: str | None, heading_path: tuple[str, ...], max_tokens: int) -> str:
    """Context to put before a chunk's text when embedding it: "Title > H1 > H2\\n\\n".

    Truncated at token boundaries (between words where possible) to at most ``max_tokens``
    tokens; "" when there is nothing to say or no room. The trailing blank line adds no token,
    so ``count_tokens(header + chunk) == count_tokens(header) + count_tokens(chunk)``; a caller
    can give the header ``model_window() - SPECIAL_TOKENS - chunk.token_count`` tokens.
    """
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0; got {max_tokens!r}")
    return _header_line(_header_parts(title, heading_path), max_tokens)


def _header_parts(title: str | None, heading_path: tuple[str, ...]) -> list[str]:
    parts: list[str] = []
    for part in (title, *heading_path):
        if part is None:
            continue
        part = " ".join(part.split())
        # PDFs often repeat the title as the first heading: say it once.
        if part and (not parts or parts[-1].casefold() != part.casefold()):
            parts.append(part)
    return parts


def _header_line(parts: list[str], max_tokens: int) -> str:
    if not parts or max_tokens == 0:
        return ""
    line = _truncate(_SEPARATOR.join(parts), max_tokens)
    return line + "\n\n" if line else ""


def _truncate(line: str, max_tokens: int) -> str:
    """`line` cut to at most `max_tokens` tokens, between words where possible and never
    on a dangling separator; "" if nothing fits."""
    encoding = get_tokenizer().encode(line, add_special_tokens=False)
    if len(encoding.ids) <= max_tokens:
        return line
    offsets = encoding.offsets
    starts_word = [not token.startswith("##") for token in encoding.tokens]
    cut = max_tokens
    while cut > 1 and not starts_word[cut]:
        cut -= 1
    if not starts_word[cut]:
        cut = max_tokens  # one word longer than the budget: cut inside it
    while True:
        truncated = line[: offsets[cut][0]].rstrip()
        if truncated.endswith(" >"):  # do not end on a dangling separator
            truncated = truncated[:-2].rstrip()
        # A cut inside a word can re-tokenise into more pieces: back off until it fits.
        if cut <= 1 or count_tokens(truncated) <= max_tokens:
            break
        cut -= 1
    if not truncated or count_tokens(truncated) > max_tokens:
        return ""
    return truncated

"""Prompt-ready context: retrieve, merge overlapping chunks into passages, drop duplicates,
order, sanitise, number and fit into a token budget.

Each passage is one stretch of one document: ``text`` is the document's extracted text
from ``char_start`` to ``char_end``, sanitised (so, when nothing had to be removed, exactly
that slice), and its citation number is the ``[n]`` that heads it in the context.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings
from tokenizers import Tokenizer

from documents.citations import pages_label
from documents.embedding.spec import settings_tokenizer_file
from documents.selectors import User
from documents.tokenizer import get_tokenizer
from search.rag.sanitize import sanitize_text
from search.retrieval import SearchParams, SearchResult, search

Order = Literal["relevance", "document"]
ORDERS: tuple[str, ...] = ("relevance", "document")
SEPARATOR = "\n\n"
# A passage cut shorter than this says too little to be worth its citation header.
MIN_PASSAGE_TOKENS = 24
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ContextParams:
    search: SearchParams
    max_tokens: int
    order: Order = "relevance"


@dataclass(frozen=True)
class Segment:
    """One retrieved chunk (a hit or a hit's neighbour) as a span of its document."""

    chunk_id: int
    char_start: int
    char_end: int
    text: str
    first_page: int | None
    last_page: int | None
    rank: float  # the hit's position; its neighbours come just after it


@dataclass
class Passage:
    document_id: int
    document_title: str
    source_name: str
    collection: str
    heading_path: list[str]
    chunk_id: int  # the best-ranked chunk, for links
    score: float
    rank: float
    segments: list[Segment]  # the chunks merged into it, by position
    char_start: int
    original: str  # the document's text from char_start on
    text: str = ""  # `original`, sanitised: what the context shows
    flags: list[str] = field(default_factory=list)
    number: int = 0
    truncated: bool = False

    @property
    def char_end(self) -> int:
        return self.char_start + len(self.original)

    def _covered(self) -> list[Segment]:
        """The merged chunks that begin in the passage (after a cut, some do not)."""
        return [s for s in self.segments if self.char_start <= s.char_start < self.char_end]

    @property
    def chunk_ids(self) -> list[int]:
        return [s.chunk_id for s in self._covered()]

    @property
    def first_page(self) -> int | None:
        return min(
            (s.first_page for s in self._covered() if s.first_page is not None), default=None
        )

    @property
    def last_page(self) -> int | None:
        return max((s.last_page for s in self._covered() if s.last_page is not None), default=None)


@dataclass
class Context:
    query: str
    mode: str
    text: str  # the numbered passages, ready to paste into a prompt
    token_count: int
    max_tokens: int
    budget: int  # max_tokens less the safety margin: what `text` is fitted into
    tokenizer: str
    citations: list[Passage]
    omitted: int  # passages left out for the budget
    timing_ms: dict[str, float]
    anonymous: bool = False  # retrieved as an anonymous caller: public collections only
    hint: str | None = None  # for the caller, e.g. why an anonymous search found nothing
    reranker: str | None = None  # the reranker that ordered the passages, if any
    notices: list[str] = field(default_factory=list)  # the search's (e.g. a rerank skipped)
    models: list[str] = field(default_factory=list)  # the embedding models that served it


def _tokenizer() -> Tokenizer:
    # The LLM's tokenizer when given; else the settings' embedding model's (its folder's
    # tokenizer.json), else the packaged one.
    return get_tokenizer(settings.RAG_TOKENIZER_PATH or settings_tokenizer_file())


def count_tokens(text: str) -> int:
    """Tokens of `text` by the context tokenizer (RAG_TOKENIZER_PATH, else the embedding
    model's); an LLM's own tokenizer may count differently."""
    return len(_tokenizer().encode(text, add_special_tokens=False).ids)


def _segments(result: SearchResult, rank: int) -> Iterable[tuple[Segment, SearchResult]]:
    yield (
        Segment(
            result.chunk_id,
            result.char_start,
            result.char_end,
            result.text,
            result.first_page,
            result.last_page,
            float(rank),
        ),
        result,
    )
    for n in result.neighbors:
        segment = Segment(
            n["chunk_id"],
            n["char_start"],
            n["char_end"],
            n["text"],
            n["first_page"],
            n["last_page"],
            rank + 0.5,
        )
        yield segment, result


def passages_merge(results: list[SearchResult]) -> list[Passage]:
    """One passage per stretch of a document: chunks that overlap or touch (neighbours,
    the chunker's overlap) are merged; the same text found twice is kept once. Best
    ranked first."""
    by_document: dict[int, list[tuple[Segment, SearchResult]]] = {}
    for rank, result in enumerate(results):
        for segment, hit in _segments(result, rank):
            by_document.setdefault(hit.document_id, []).append((segment, hit))
    passages: list[Passage] = []
    for pairs in by_document.values():
        pairs.sort(key=lambda pair: (pair[0].char_start, pair[0].rank))
        current: Passage | None = None
        for segment, hit in pairs:
            if current is not None and segment.char_start <= current.char_end:
                _extend(current, segment, hit)
                continue
            current = Passage(
                document_id=hit.document_id,
                document_title=hit.document_title,
                source_name=hit.source_name,
                collection=hit.collection,
                heading_path=hit.heading_path,
                chunk_id=segment.chunk_id,
                score=hit.score,
                rank=segment.rank,
                segments=[segment],
                char_start=segment.char_start,
                original=segment.text,
            )
            passages.append(current)
    passages.sort(key=lambda p: p.rank)
    seen: set[str] = set()
    unique = []
    for passage in passages:
        key = _SPACES.sub(" ", passage.original).strip().casefold()
        if key not in seen:
            seen.add(key)
            unique.append(passage)
    return unique


def _extend(passage: Passage, segment: Segment, hit: SearchResult) -> None:
    if segment.chunk_id in {s.chunk_id for s in passage.segments}:
        return  # a neighbour that is also a hit
    if segment.char_end > passage.char_end:
        # Chunk texts are exact slices of the document, so the overlap can be cut by offset.
        passage.original += segment.text[passage.char_end - segment.char_start :]
    passage.segments.append(segment)
    if segment.rank < passage.rank:
        passage.rank, passage.chunk_id, passage.score = segment.rank, segment.chunk_id, hit.score
        passage.heading_path = hit.heading_path


def passages_order(passages: list[Passage], order: Order) -> list[Passage]:
    """`relevance`: best first. `document`: each document's passages together, in reading
    order, the documents by their best passage."""
    if order == "relevance":
        return passages
    first_seen: dict[int, int] = {}
    for index, passage in enumerate(passages):
        first_seen.setdefault(passage.document_id, index)
    return sorted(passages, key=lambda p: (first_seen[p.document_id], p.char_start))


def _one_line(text: str) -> str:
    clean = sanitize_text(text, policy=settings.RAG_INSTRUCTION_POLICY)
    return _SPACES.sub(" ", clean.text).strip()


def citation_header(passage: Passage) -> str:
    """`[n] Title (source, pages)`: what the model cites and a reader can find."""
    title = _one_line(passage.document_title)
    source = _one_line(passage.source_name)
    pages = pages_label(passage.first_page, passage.last_page)
    details = [x for x in (source if source != title else "", pages) if x]
    return f"[{passage.number}] {title}" + (f" ({', '.join(details)})" if details else "")


def _block(passage: Passage) -> str:
    return f"{citation_header(passage)}\n{passage.text}"


def _sanitised(passage: Passage) -> Passage:
    clean = sanitize_text(passage.original, policy=settings.RAG_INSTRUCTION_POLICY)
    passage.text, passage.flags = clean.text, clean.flags
    return passage


def _cut(passage: Passage, room: int) -> Passage | None:
    """As much of the passage as fits `room` tokens, from its best-ranked chunk on (the
    neighbours before it go first), cut at a token boundary; None when less than
    MIN_PASSAGE_TOKENS would fit."""
    best = next(s for s in passage.segments if s.chunk_id == passage.chunk_id)
    skip = max(0, best.char_start - passage.char_start)
    text = passage.original[skip:]
    offsets = _tokenizer().encode(text, add_special_tokens=False).offsets
    keep = min(room - count_tokens(citation_header(passage) + "\n"), len(offsets))
    while keep >= MIN_PASSAGE_TOKENS:
        cut = dataclasses.replace(
            passage,
            char_start=passage.char_start + skip,
            original=text[: offsets[keep - 1][1]],
            truncated=True,
        )
        if count_tokens(_block(_sanitised(cut))) <= room:
            return cut
        keep = keep * 3 // 4  # sanitising added tokens (a fence): try shorter
    return None


def passage_clip(passage: Passage, max_chars: int) -> Passage:
    """The passage cut to about `max_chars` characters with its header, so that a huge
    chunk (one word of a megabyte is a single [UNK] token) cannot make a context huge
    within its token budget, nor make counting its tokens slow."""
    room = max(0, max_chars - len(citation_header(passage)) - 64)  # 64: number, fences
    if len(passage.original) <= room:
        return passage
    return dataclasses.replace(passage, original=passage.original[:room], truncated=True)


def passages_fit(
    passages: list[Passage], *, budget: int, max_chars: int
) -> tuple[list[Passage], int]:
    """Number the passages in order and keep those that fit into `budget` tokens and
    `max_chars` characters; the first that does not fit whole is cut, later ones are
    tried in case they are short."""
    chosen: list[Passage] = []
    used = chars = 0
    separator = count_tokens(SEPARATOR)
    for passage in passages:
        passage.number = len(chosen) + 1
        gap = separator if chosen else 0
        room_chars = max_chars - chars - (len(SEPARATOR) if chosen else 0)
        block = _block(_sanitised(passage))
        cost = count_tokens(block) + gap
        if used + cost <= budget and len(block) <= room_chars:
            chosen.append(passage)
            used, chars = used + cost, max_chars - room_chars + len(block)
            continue
        cut = _cut(passage, budget - used - gap)
        if cut is not None and len(block := _block(cut)) <= room_chars:
            chosen.append(cut)
            used, chars = used + count_tokens(block) + gap, max_chars - room_chars + len(block)
    # Counting blocks apart can differ from counting the joined text with some
    # tokenizers (merges across the separator): the joined text is what must fit.
    while chosen and count_tokens(SEPARATOR.join(_block(p) for p in chosen)) > budget:
        chosen.pop()
    return chosen, len(passages) - len(chosen)


def context_budget(max_tokens: int) -> int:
    return max(1, math.floor(max_tokens * (1 - settings.RAG_TOKEN_SAFETY_MARGIN)))


def context_build(*, params: ContextParams, user: User | None) -> Context:
    """Retrieve as `user` (search applies their access in SQL) and assemble the context.
    Raises search.retrieval.QueryError for a query that cannot be searched."""
    started = time.perf_counter()
    response = search(params.search, user=user)
    assembling = time.perf_counter()
    max_chars = settings.RAG_CONTEXT_MAX_CHARS
    passages = [
        passage_clip(p, max_chars)
        for p in passages_order(passages_merge(response.results), params.order)
    ]
    budget = context_budget(params.max_tokens)
    chosen, omitted = passages_fit(passages, budget=budget, max_chars=max_chars)
    text = SEPARATOR.join(_block(p) for p in chosen)
    now = time.perf_counter()
    timing = {
        **response.timing_ms,
        "assembly_ms": (now - assembling) * 1000,
        "total_ms": (now - started) * 1000,
    }
    return Context(
        query=params.search.query,
        mode=response.mode,
        text=text,
        token_count=count_tokens(text),
        max_tokens=params.max_tokens,
        budget=budget,
        tokenizer=settings.RAG_TOKENIZER_PATH or settings.EMBEDDING_MODEL_NAME,
        citations=chosen,
        omitted=omitted,
        timing_ms=timing,
        anonymous=response.anonymous,
        reranker=response.reranker,
        notices=response.notices,
        models=response.models,
    )


def context_params(data: dict[str, Any]) -> ContextParams:
    """ContextParams from a validated request (the search fields plus the context ones)."""
    values = dict(data)
    max_tokens = values.pop("max_tokens")
    order = values.pop("order", "relevance")
    values.pop("stream", None)
    return ContextParams(search=SearchParams(**values), max_tokens=max_tokens, order=order)

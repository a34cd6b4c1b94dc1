"""What every reranker backend is: a name and a way to score (query, text) pairs."""

from __future__ import annotations

from typing import Protocol


class RerankError(Exception):
    """A reranker that could not score. The message is shown to the caller in the
    search's notices ("reranking skipped: ..."), so it says what failed and never
    carries a secret."""


class Reranker(Protocol):
    name: str  # what the response's `reranker` says, e.g. "cross-encoder:ms-marco-MiniLM-L-6-v2"

    def score(self, query: str, texts: list[str]) -> list[float]:
        """One relevance score per text, in the texts' order: higher is more relevant."""
        ...

"""RAG on top of retrieval: a prompt-ready context with numbered citations, and answers
from any OpenAI-compatible chat model, whole or streamed.

context = context_build(params=context_params(validated_data), user=request.user)
answer = answer_create(params=..., user=request.user)
"""

from search.rag.answer import (
    CITATION,
    NO_CONTEXT_ANSWER,
    Answer,
    AnswerStream,
    answer_create,
    answer_stream_open,
    citations_used,
)
from search.rag.context import (
    ORDERS,
    Context,
    ContextParams,
    Passage,
    context_build,
    context_params,
    count_tokens,
)
from search.rag.llm import LLMError, LLMNotConfigured, LLMTimeout, LLMUnavailable, llm_config
from search.rag.sanitize import POLICIES, sanitize_text

__all__ = [
    "CITATION",
    "NO_CONTEXT_ANSWER",
    "ORDERS",
    "POLICIES",
    "Answer",
    "AnswerStream",
    "Context",
    "ContextParams",
    "LLMError",
    "LLMNotConfigured",
    "LLMTimeout",
    "LLMUnavailable",
    "Passage",
    "answer_create",
    "answer_stream_open",
    "citations_used",
    "context_build",
    "context_params",
    "count_tokens",
    "llm_config",
    "sanitize_text",
]

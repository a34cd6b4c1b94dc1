"""Settings of search, RAG answers, reranking and monitoring (imported by settings.py).

Every variable is listed with its default in ``.env.example``.
"""

from __future__ import annotations

from ragsite.environment import env

# --- Search ---------------------------------------------------------------------------
SEARCH_MAX_QUERY_CHARS = env.int("SEARCH_MAX_QUERY_CHARS", default=1000)
SEARCH_MAX_TOP_K = env.int("SEARCH_MAX_TOP_K", default=100)
# The semantic leg ranks exactly (no HNSW) when the collections searched hold at most this
# many chunks: exact and fast there, and immune to a big table of other collections.
SEARCH_EXACT_MAX_CHUNKS = env.int("SEARCH_EXACT_MAX_CHUNKS", default=2_000)
# A collection with at least this many chunks gets a vector index of its own (built by the
# worker, documents/vector_index.py), kept until it shrinks below half; 0: never.
SEARCH_DEDICATED_INDEX_MIN_CHUNKS = env.int("SEARCH_DEDICATED_INDEX_MIN_CHUNKS", default=20_000)
# How far a filtered HNSW scan may walk before giving up (pgvector's default is 20,000).
SEARCH_HNSW_MAX_SCAN_TUPLES = env.int("SEARCH_HNSW_MAX_SCAN_TUPLES", default=100_000)
# Fusion defaults, tuned on SciFact train (docs/benchmarks.md); each is a request parameter.
SEARCH_DEFAULTS = {
    "rrf_k": env.int("SEARCH_RRF_K", default=60),
    "keyword_weight": env.float("SEARCH_KEYWORD_WEIGHT", default=1.0),
    "semantic_weight": env.float("SEARCH_SEMANTIC_WEIGHT", default=1.0),
    "keyword_depth": env.int("SEARCH_KEYWORD_DEPTH", default=200),
    "semantic_depth": env.int("SEARCH_SEMANTIC_DEPTH", default=200),
    # How hybrid search fuses its legs: rrf (by rank) or score (min-max normalised
    # scores, alpha * semantic + (1 - alpha) * keyword). score with alpha 0.6: tuned on
    # SciFact train and the pydoc tuning half (docs/benchmarks.md), never on a test split.
    "fusion": env.str("SEARCH_FUSION", default="score"),
    "alpha": env.float("SEARCH_ALPHA", default=0.6),
}
# Bounds on one request's work: each filter key adds a condition to the SQL, so
# anonymous callers must not be able to send thousands. Depth and size are of the whole
# `filters` JSON.
SEARCH_MAX_FILTER_KEYS = env.int("SEARCH_MAX_FILTER_KEYS", default=20)  # metadata + _any
SEARCH_MAX_FILTER_VALUES = env.int("SEARCH_MAX_FILTER_VALUES", default=100)  # all of _any
SEARCH_MAX_FILTER_DEPTH = env.int("SEARCH_MAX_FILTER_DEPTH", default=8)
SEARCH_MAX_FILTER_CHARS = env.int("SEARCH_MAX_FILTER_CHARS", default=32_000)
# statement_timeout of the search SQL behind a request (API, context, ask, similar, the
# page); 0: none. Management commands and the evaluation run without it.
SEARCH_STATEMENT_TIMEOUT_MS = env.int("SEARCH_STATEMENT_TIMEOUT_MS", default=5000)
# Characters of one result's `text` in a response (the whole chunk is still searched), and
# of a /context/ answer's `context` besides its token budget.
SEARCH_RESULT_MAX_CHARS = env.int("SEARCH_RESULT_MAX_CHARS", default=20_000)
# The search page's snippet for a result that shares no word with the query: the passage
# closest in meaning among at most this many sentence windows per page, embedded in one
# model call (about 30 ms a window on a busy 2-core machine); 0: the chunk's first passage.
SEARCH_SNIPPET_MEANING_WINDOWS = env.int("SEARCH_SNIPPET_MEANING_WINDOWS", default=8)
RAG_CONTEXT_MAX_CHARS = env.int("RAG_CONTEXT_MAX_CHARS", default=200_000)

# --- RAG: context and answers ---
# Token budget of /api/v1/context/ and /api/v1/ask/: the default and the most a request
# may ask for. Counts come from RAG_TOKENIZER_PATH (a tokenizer.json; empty: the embedding
# model's), which may differ from the LLM's own count, so only (1 - margin) of a budget is
# filled.
RAG_CONTEXT_TOKENS = env.int("RAG_CONTEXT_TOKENS", default=2000)
RAG_MAX_CONTEXT_TOKENS = env.int("RAG_MAX_CONTEXT_TOKENS", default=32000)
RAG_TOKEN_SAFETY_MARGIN = env.float("RAG_TOKEN_SAFETY_MARGIN", default=0.1)
RAG_TOKENIZER_PATH = env.str("RAG_TOKENIZER_PATH", default="")
# Instruction-like text inside documents ("ignore previous instructions", role markers):
# "fence" quotes it between ⟦ ⟧ and flags the passage, "flag" only flags it, "off" neither.
RAG_INSTRUCTION_POLICY = env.str("RAG_INSTRUCTION_POLICY", default="fence")
# Any OpenAI-compatible Chat Completions server (OpenAI, vLLM, Ollama, llama.cpp), e.g.
# http://127.0.0.1:11434/v1 for Ollama. Empty: /api/v1/ask/ answers 503.
LLM_BASE_URL = env.str("LLM_BASE_URL", default="")
LLM_MODEL = env.str("LLM_MODEL", default="")
LLM_API_KEY = env.str("LLM_API_KEY", default="")
# Seconds to wait for the model's first (and, streaming, each next) bytes: then 504.
LLM_TIMEOUT = env.float("LLM_TIMEOUT", default=60.0)
LLM_MAX_TOKENS = env.int("LLM_MAX_TOKENS", default=1024)  # of the answer; 0: not sent
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.0)

# --- Reranking (search/rerank/, README "Reranking") ---
# "" (none), "cross-encoder" (a local CrossEncoder folder, RERANK_MODEL_PATH) or "http"
# (a TEI / Cohere / Jina-compatible /rerank server). A failing reranker never fails a
# search: the fused order is served with a notice.
RERANK_BACKEND = env.str("RERANK_BACKEND", default="")
RERANK_DEFAULT = env.bool("RERANK_DEFAULT", default=False)  # rerank when a request says nothing
RERANK_DEPTH = env.int("RERANK_DEPTH", default=50)  # candidates reranked per search
RERANK_MAX_DEPTH = env.int("RERANK_MAX_DEPTH", default=200)  # the most a request may ask
RERANK_MODEL_PATH = env.str("RERANK_MODEL_PATH", default="")
RERANK_BASE_URL = env.str("RERANK_BASE_URL", default="")  # e.g. http://127.0.0.1:8081
RERANK_API_KEY = env.str("RERANK_API_KEY", default="")
RERANK_MODEL = env.str("RERANK_MODEL", default="")  # sent as "model" (Cohere, Jina)
RERANK_TIMEOUT_SECONDS = env.float("RERANK_TIMEOUT_SECONDS", default=10.0)

# --- Monitoring: query log, feedback, metrics (insights/) ---
# Every search, context, ask and similar call (API and page) is logged: "on" or "off".
QUERY_LOG = env.str("QUERY_LOG", default="on") == "on"
QUERY_LOG_RETENTION_DAYS = env.int("QUERY_LOG_RETENTION_DAYS", default=30)  # then deleted
QUERY_LOG_ANONYMOUS_TEXT = env.bool("QUERY_LOG_ANONYMOUS_TEXT", default=True)
QUERY_LOG_ANSWERS = env.str("QUERY_LOG_ANSWERS", default="off") == "on"  # /ask/ answers kept
QUERY_LOG_TOP_RESULTS = env.int("QUERY_LOG_TOP_RESULTS", default=10)  # result ids per row
# Rows are written off the request path, in bulk every this many seconds (a crash loses at
# most that long of rows); 0: each row in its request (insights/log_writer.py).
QUERY_LOG_FLUSH_SECONDS = env.float("QUERY_LOG_FLUSH_SECONDS", default=0.5)
# Anonymous feedback votes per address (signed-in votes count under API_THROTTLE_USER).
FEEDBACK_THROTTLE_ANON = env.str("FEEDBACK_THROTTLE_ANON", default="30/hour")
# /metrics answers 404 unless this is set; then it needs `Authorization: Bearer <token>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# A qcluster serves its own /metrics (same token) on this port; 0: none (insights/apps.py).
METRICS_WORKER_PORT = env.int("METRICS_WORKER_PORT", default=0)
# Levels read from the database (documents, queue, chunks, drift, evaluation) are kept this
# many seconds per process between scrapes; 0: read on every scrape.
METRICS_CACHE_SECONDS = env.float("METRICS_CACHE_SECONDS", default=30.0)
# A judgment set's run alerts when nDCG@10 drops by more than this against the previous
# run or the best of the last 7 (insights/evaluation.py).
EVAL_ALERT_DROP = env.float("EVAL_ALERT_DROP", default=0.02)
# Alerts are also POSTed here as JSON (5 s timeout; a failure is logged); empty: none.
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")

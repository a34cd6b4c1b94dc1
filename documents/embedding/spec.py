"""What a collection's vectors are made with: the model spec.

A collection records its spec when it is created (the default comes from settings) and
keeps it until `reembed` moves it to another. Everything that embeds or searches reads
the spec from the collection, so collections of different models and dimensions live in
one installation (documents/vector_index.py keeps one HNSW index per model).

Imports neither torch nor onnxruntime, nor the models module (which imports this).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from django.conf import settings

from documents.embedding._source import EmbeddingError, model_path, packaged_model_path

BACKENDS = ("onnx", "torch", "openai")
# The packaged all-MiniLM-L6-v2: 384 dimensions, trained with (and sentence-transformers
# enforcing) 256 tokens, [CLS] and [SEP] included.
PACKAGED_DIMENSIONS = 384
PACKAGED_MAX_TOKENS = 256
# A model served over HTTP says nothing of its window; most embedding servers take 512.
SERVER_MAX_TOKENS = 512
# Names are spliced into the search statement and index definitions as SQL literals:
# this alphabet (every hub and server name we know of) keeps that safe by construction.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+@-]{0,199}$")


@dataclass(frozen=True)
class ModelSpec:
    """``name`` is what chunks record and search filters on; ``location`` is the model
    folder (onnx, torch; "" = the packaged weights) or the server's base URL (openai)."""

    name: str
    backend: str
    location: str
    dimensions: int
    query_prefix: str = ""
    passage_prefix: str = ""
    max_tokens: int = PACKAGED_MAX_TOKENS

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.backend not in BACKENDS:
            raise EmbeddingError(f"backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if not 1 <= self.dimensions <= 16_000:
            raise EmbeddingError(f"model {self.name}: {self.dimensions} dimensions is not valid")
        if self.max_tokens < 16:
            raise EmbeddingError(f"model {self.name}: max_tokens must be at least 16")

    @property
    def folder(self) -> str:
        """The local model folder (onnx, torch). Empty means the packaged weights, never
        "whatever EMBEDDING_MODEL_PATH says now": a collection keeps its model when the
        settings change (a new path is recorded on the collections created after)."""
        return self.location or packaged_model_path()

    def tokenizer_file(self) -> Path | None:
        """The model's own tokenizer.json; None for a server model (chunks are then counted
        with the packaged tokenizer: an estimate, which the server's truncation backs up)."""
        if self.backend == "openai":
            return None
        candidate = Path(self.folder) / "tokenizer.json"
        return candidate if candidate.is_file() else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)

    def cache_key(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise EmbeddingError(
            f"model name {name!r}: use letters, digits and . _ : / + @ - (at most 200)"
        )
    return name


def sql_literal(name: str) -> str:
    """A checked model name as an SQL string literal (it has no quote to escape)."""
    return "'" + check_name(name) + "'"


def configured_backend() -> str:
    backend = str(settings.EMBEDDING_BACKEND)
    if backend not in BACKENDS:
        raise EmbeddingError(f"EMBEDDING_BACKEND={backend!r}: use one of {', '.join(BACKENDS)}")
    return backend


def _max_tokens(backend: str, folder: str | None) -> int:
    configured = int(settings.EMBEDDING_MAX_TOKENS)
    if configured > 0:
        return configured
    if backend == "openai":
        return SERVER_MAX_TOKENS
    config = Path(folder or model_path()) / "sentence_bert_config.json"
    if config.is_file():
        try:
            value = json.loads(config.read_text()).get("max_seq_length")
        except (OSError, ValueError):
            value = None
        if isinstance(value, int) and value > 0:
            return value
    return PACKAGED_MAX_TOKENS


def settings_spec(*, name: str, dimensions: int | None = None) -> ModelSpec:
    """The spec the settings describe, under ``name`` (the embedding package decides the
    name: an int8 export that disagrees with fp32 gets its own). ``dimensions`` None:
    EMBEDDING_DIMENSIONS, else the packaged model's (a caller that loads the model may
    probe it instead)."""
    backend = configured_backend()
    server = backend == "openai"
    location = str(settings.EMBEDDING_BASE_URL if server else settings.EMBEDDING_MODEL_PATH)
    if backend == "openai" and not location:
        raise EmbeddingError("EMBEDDING_BACKEND=openai needs EMBEDDING_BASE_URL")
    if dimensions is None:
        dimensions = int(settings.EMBEDDING_DIMENSIONS) or PACKAGED_DIMENSIONS
    return ModelSpec(
        name=name,
        backend=backend,
        location=location,
        dimensions=dimensions,
        query_prefix=str(settings.EMBEDDING_QUERY_PREFIX),
        passage_prefix=str(settings.EMBEDDING_PASSAGE_PREFIX),
        max_tokens=_max_tokens(backend, location if backend != "openai" else None),
    )


def with_changes(spec: ModelSpec, **changes: Any) -> ModelSpec:
    return replace(spec, **changes)


def settings_tokenizer_file() -> Path | None:
    """The settings' model's tokenizer.json (None for a model server: the packaged
    tokenizer then stands in), without loading or asking the model."""
    if configured_backend() == "openai":
        return None
    candidate = Path(settings.EMBEDDING_MODEL_PATH or model_path()) / "tokenizer.json"
    return candidate if candidate.is_file() else None

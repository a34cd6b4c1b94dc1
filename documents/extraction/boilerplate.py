"""Page chrome that is not a page's content: which element holds the content, and which
elements inside it are still navigation.

Generated manuals (Sphinx, DocBook, Texinfo) put the previous, next and parent pages'
titles on every page in tables and divs that no landmark marks. Left in, each page yields a
chunk of navigation and makes a page match questions about its neighbours (issue 17). The
rules here are structural first (landmarks, roles, the class names generators and themes
use), then one text heuristic: a block of links whose other words are only "Next",
"Previous", "Up", "Home"... is a navigation bar.

Measured against trafilatura and readability-lxml as a fallback (docs/reliability.md, the
boilerplate bullet): on the generated manuals these rules keep all of the content where the
generic extractors drop code samples, tables and short sections, so they are not used.
"""

from __future__ import annotations

import re
from collections import Counter

from bs4 import BeautifulSoup
from bs4.element import Tag

# Roles whose element is page chrome wherever it appears (ARIA landmark roles).
_CHROME_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})

# Class or id names (whole names, compared lowercased) that themes and generators give
# navigation: Sphinx ("related", "sphinxsidebar", "footer"), DocBook ("navheader",
# "navfooter"), Texinfo 7 ("nav-panel"), and the usual site names.
_NAV_NAMES = frozenset(
    {
        "nav",
        "navbar",
        "navheader",
        "navfooter",
        "nav-panel",
        "navigation",
        "breadcrumb",
        "breadcrumbs",
        "sidebar",
        "sphinxsidebar",
        "sphinxsidebarwrapper",
        "related",
        "menu",
        "footer",
        "site-footer",
        "site-header",
        "skip-link",
        "skip-links",
        "skiplink",
        "pagination",
        "prev-next",
        "mobile-nav",
        "headerlink",
    }
)
# Substrings that say navigation in any compound name ("main-sidebar", "wy-breadcrumbs").
_NAV_PARTS = ("breadcrumb", "sidebar", "navbar", "skip-link", "skiplink")
# Tables of contents are navigation outside the content (a page's sidebar, a DocBook
# chapter's "toc" div) but content inside it (a Sphinx toctree on an index page).
_TOC_NAMES = frozenset(
    {"toc", "toctree", "contents", "table-of-contents", "localtoc", "section-toc", "mini-toc"}
)
# Never dropped by name: themes put layout classes ("has-sidebar") on these.
_CONTAINERS = frozenset({"html", "body", "main", "article"})

# Heading permalinks: Sphinx's "¶", Texinfo's "¶", GitHub-style "#", "§", link icons.
_PERMALINK_TEXTS = frozenset({"¶", "#", "§", "🔗", "link", "permalink"})
_PERMALINK_CLASSES = frozenset({"headerlink", "anchor", "anchorjs-link", "copiable-link"})

# The words a navigation bar has besides its links: "Next: <a>, Previous: <a>, Up: <a>
# [<a>Contents</a>][<a>Index</a>]" (Texinfo), "<a>Prev</a> <a>Up</a> <a>Next</a>" (DocBook).
_NAV_WORDS = frozenset(
    {
        "next",
        "previous",
        "prev",
        "up",
        "home",
        "top",
        "index",
        "contents",
        "toc",
        "back",
        "forward",
        "page",
        "topic",
        "chapter",
        "section",
        "go",
        "to",
        "the",
    }
)
_NAV_KEYWORDS = frozenset({"next", "previous", "prev", "up"})
_WORD = re.compile(r"\w+")
# Only small blocks can be navigation bars; a long text with links is content.
_MAX_NAV_BAR_CHARS = 400

_MAIN_CLASS = "body"  # Sphinx's classic and pydoc themes: <div class="body">


def _names(tag: Tag) -> list[str]:
    classes = tag.get("class")
    names = [str(name).lower() for name in (classes if isinstance(classes, list) else [])]
    ident = tag.get("id")
    if isinstance(ident, str):
        names.append(ident.lower())
    return names


def _visible_text(tag: Tag) -> str:
    return tag.get_text(" ", strip=True)


def content_root(soup: BeautifulSoup) -> Tag | None:
    """The element holding the page's content, when the page says which: ``<main>``,
    ``[role=main]``, a lone ``<article>``, or Sphinx's ``div.body``; None otherwise. An
    empty one (a page that fills it with JavaScript) does not count."""
    found: dict[str, Tag] = {}
    articles = 0
    for tag in soup.find_all(_is_root_candidate):  # one pass over the tree
        kind = _root_kind(tag)
        articles += kind == "article"
        found.setdefault(kind, tag)
    if articles != 1:
        found.pop("article", None)
    for kind in ("main", "role", "article", "body"):
        candidate = found.get(kind)
        if candidate is not None and next(candidate.stripped_strings, None) is not None:
            return candidate
    return None


def _root_kind(tag: Tag) -> str:
    if tag.name in ("main", "article"):
        return tag.name
    if str(tag.get("role", "")).lower() == "main":
        return "role"
    return "body"


def _is_root_candidate(tag: Tag) -> bool:
    if tag.name in ("main", "article") or str(tag.get("role", "")).lower() == "main":
        return True
    return tag.name == "div" and _MAIN_CLASS in _names(tag)


def is_boilerplate(tag: Tag, *, in_content: bool) -> bool:
    """Whether ``tag`` is navigation or another part of the page chrome.

    ``in_content``: the tag lies inside the page's content root (see content_root), where
    a table of contents is content.
    """
    role = str(tag.get("role", "")).lower()
    if role in _CHROME_ROLES:
        return True
    if role == "main":
        return False
    if tag.name == "search":  # the HTML element for a search form
        return True
    if tag.name == "a":
        return _is_permalink(tag) or _is_skip_link(tag)
    if tag.name in _CONTAINERS:
        return False
    names = _names(tag)
    for name in names:
        if name in _NAV_NAMES or any(part in name for part in _NAV_PARTS):
            return True
        if not in_content and name in _TOC_NAMES:
            return True
    return _is_nav_bar(tag)


def _is_permalink(tag: Tag) -> bool:
    href = str(tag.get("href", ""))
    if not href.startswith("#"):
        return False
    if _PERMALINK_CLASSES.intersection(_names(tag)):
        return True
    return _visible_text(tag).lower() in _PERMALINK_TEXTS


def _is_skip_link(tag: Tag) -> bool:
    href = str(tag.get("href", ""))
    return href.startswith("#") and _visible_text(tag).lower().startswith("skip to")


def _is_nav_bar(tag: Tag) -> bool:
    """A small block of two or more links whose other words are only navigation words,
    with "next", "previous" or "up" among them or as the whole text of a link."""
    if tag.name not in ("div", "p", "table", "tr", "td", "ul", "span"):
        return False
    # Cheap tests first, as this runs on most blocks of a page: the bar's links are
    # direct children, its text is short, and it says "next", "previous" or "up".
    if not any(isinstance(child, Tag) and child.name == "a" for child in tag.children):
        if tag.name not in ("table", "tr", "ul"):
            return False
    text = _short_text(tag, _MAX_NAV_BAR_CHARS)
    if text is None:
        return False
    words = _WORD.findall(text.lower())
    if not _NAV_KEYWORDS.intersection(words):
        return False
    links = tag.find_all("a", limit=20)
    if len(links) < 2:
        return False
    link_words = [_WORD.findall(_visible_text(link).lower()) for link in links]
    other = set(Counter(words) - Counter(word for found in link_words for word in found))
    if not other <= _NAV_WORDS:
        return False
    if other & _NAV_KEYWORDS:  # "Next: <a>Title</a>"
        return True
    # Or a link that says only where it goes: "<a>Next »</a>" (not "<a>TarFile.next()</a>").
    return any(
        _NAV_KEYWORDS.intersection(found) and set(found) <= _NAV_WORDS for found in link_words
    )


def _short_text(tag: Tag, limit: int) -> str | None:
    """The tag's text if it has at most ``limit`` characters, else None (read no further)."""
    parts: list[str] = []
    length = 0
    for string in tag.strings:
        length += len(string)
        if length > limit:
            return None
        parts.append(string)
    return " ".join(parts)

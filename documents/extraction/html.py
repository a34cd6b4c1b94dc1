"""HTML to blocks: page chrome and non-content elements dropped, headings kept as structure."""

from __future__ import annotations

import codecs
import re

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag
from django.conf import settings

from .boilerplate import content_root, is_boilerplate
from .tables import RowBudget, table_segments
from .text import HeadingTracker, Parsed, Segment, bom_codec, decode_text, one_line

# Never content: code, styling, widgets, and page chrome (navigation, sidebars, forms).
_DROPPED = (
    "head",
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "aside",
    "form",
    "svg",
    "iframe",
    "object",
    "embed",
    "canvas",
    "button",
    "select",
    "textarea",
    "dialog",
)
# <header>/<footer> are site chrome only when they are landmarks of the page, i.e. not
# inside an article or section (HTML spec, "banner"/"contentinfo" roles). The header of
# an <article> usually holds the article's own title, which must be kept.
_CHROME = ("header", "footer")
_SECTIONING = ("article", "main", "section", "aside", "nav", "blockquote", "details")

_HEADINGS = {f"h{level}": level for level in range(1, 7)}
# Elements whose start and end break the flow of text into a new block.
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "header",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    }
)

_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9._:-]+)""", re.I)
_WHITESPACE = re.compile(r"\s+")


def _declared_codec(head: bytes) -> str | None:
    found = _META_CHARSET.search(head) or _XML_ENCODING.search(head)
    if found is None:
        return None
    try:
        codec = codecs.lookup(found.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    # WHATWG encoding rules: "iso-8859-1" and "us-ascii" labels mean windows-1252, and a
    # UTF-16 label found by reading the bytes as ASCII cannot be true: it is UTF-8.
    if codec in ("iso8859-1", "ascii", "latin-1"):
        return "cp1252"
    if codec.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return codec


def decode_html(data: bytes) -> str:
    """BOM, then UTF-8, then the charset the document declares, then detection.

    Valid UTF-8 wins over the declaration: a legacy-encoded page with non-ASCII text is
    practically never valid UTF-8 by accident, while pages saved as UTF-8 that still
    declare "iso-8859-1" are common (and would decode to mojibake without an error).
    """
    bom = bom_codec(data)
    if bom is not None:
        codec, size = bom
        return data[size:].decode(codec, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = _declared_codec(data[:4096])
    if declared is not None:
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass  # declared wrongly; detect instead
    return decode_text(data)


def _is_dropped(tag: Tag, in_section: bool) -> bool:
    if tag.name in _DROPPED or (tag.name in _CHROME and not in_section):
        return True
    return tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).lower() == "true"


class _Chrome:
    """What a page's walk leaves out: the elements dropped everywhere (above) and, with
    STRIP_BOILERPLATE on, navigation by name and shape (boilerplate.py)."""

    def __init__(self, *, strip: bool, in_content: bool) -> None:
        self.strip = strip
        self.in_content = in_content

    def dropped(self, tag: Tag, in_section: bool) -> bool:
        if self.in_content and tag.name == "aside":
            # Within a page's content an <aside> is a footnote, an abstract or a note
            # (Sphinx writes them so): content, unless it is named as navigation.
            return is_boilerplate(tag, in_content=True)
        if _is_dropped(tag, in_section):
            return True
        return self.strip and is_boilerplate(tag, in_content=self.in_content)


_KEEP_ALL = _Chrome(strip=False, in_content=False)


def _inline_text(node: Tag, chrome: _Chrome = _KEEP_ALL) -> str:
    """Text of an element as written, with <br> as a line break and dropped elements
    (an icon's <svg><title>, a <script>) left out."""
    parts: list[str] = []
    stack: list[PageElement] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Tag):
            if item is not node and chrome.dropped(item, in_section=True):
                continue
            if item.name == "br":
                parts.append("\n")
            stack.extend(reversed(item.contents))
        elif isinstance(item, NavigableString) and not isinstance(item, PreformattedString):
            parts.append(str(item))
    return "".join(parts)


def _title(soup: BeautifulSoup) -> str | None:
    # An <svg> may carry its own <title> (a tooltip); that is not the page title.
    for tag in soup.find_all("title", limit=20):
        if tag.find_parent("svg") is None:
            title = one_line(tag.get_text())
            if title:
                return title
    return None


def _data_table_rows(table: Tag) -> list[list[str]] | None:
    """The rows of a data table, cell texts in order; None for a layout table."""
    if table.find(["table", *_HEADINGS]) is not None:
        return None
    rows: list[list[str]] = []
    for row in table.find_all("tr"):
        cells = row.find_all(["td", "th"], recursive=False)
        rows.append([_inline_text(cell) for cell in cells])
    if len(rows) < 2 or max(len(row) for row in rows) < 2:
        return None
    return rows


class _BlockWalker:
    """Walks the tree once, collecting segments: text runs split at block boundaries,
    headings as structure (see ``HeadingTracker``)."""

    def __init__(self, chrome: _Chrome) -> None:
        self.chrome = chrome
        self.parsed = Parsed()
        self.headings = HeadingTracker()
        self.inline: list[str] = []
        # An explicit stack rather than recursion: real pages nest thousands of divs deep.
        # Each element is pushed twice: on the way in, and (leaving=True) on the way out;
        # in_section says whether it is inside an article/section (see _CHROME).
        self.stack: list[tuple[PageElement, bool, bool]] = []
        self.budget = RowBudget()

    def flush(self) -> None:
        text = "\n".join(line.strip() for line in "".join(self.inline).split("\n"))
        self.inline.clear()
        if text.strip():
            self.parsed.segments.append(Segment(text, heading_path=self.headings.path))

    def walk(self, root: Tag, *, in_section: bool = False) -> Parsed:
        self.stack.append((root, False, in_section))
        while self.stack:
            node, leaving, in_section = self.stack.pop()
            if leaving:
                self.flush()
            elif isinstance(node, NavigableString):
                # Comments, doctypes and CDATA are PreformattedStrings: not visible text.
                if not isinstance(node, PreformattedString):
                    self.inline.append(_WHITESPACE.sub(" ", str(node)))
            elif isinstance(node, Tag) and not self.chrome.dropped(node, in_section):
                self._enter(node, in_section)
        self.flush()
        return self.parsed

    def _heading(self, node: Tag) -> None:
        self.flush()
        text = one_line(_inline_text(node, self.chrome))
        if text:
            path = self.headings.enter(_HEADINGS[node.name], text)
            self.parsed.segments.append(Segment(text, heading_path=path, is_heading=True))
            if self.parsed.title is None and node.name == "h1":
                self.parsed.title = text

    def _table(self, node: Tag) -> bool:
        """A data table becomes rows (documents/extraction/tables.py); returns False for
        a layout table (one column, or holding headings or other tables), walked as
        ordinary blocks instead."""
        rows = _data_table_rows(node)
        if rows is None:
            return False
        self.flush()
        self.parsed.segments.extend(
            table_segments(rows, heading_path=self.headings.path, budget=self.budget)
        )
        return True

    def _enter(self, node: Tag, in_section: bool) -> None:
        name = node.name
        if name in _HEADINGS:
            self._heading(node)
        elif name == "table" and self._table(node):
            return
        elif name == "pre":
            self.flush()
            self.parsed.segments.append(
                Segment(_inline_text(node, self.chrome), heading_path=self.headings.path)
            )
        elif name == "br":
            self.inline.append("\n")
        else:
            if name in _BLOCKS:
                self.flush()
                self.stack.append((node, True, in_section))
            inner = in_section or name in _SECTIONING
            self.stack.extend((child, False, inner) for child in reversed(node.contents))


def _blocks(soup: BeautifulSoup) -> Parsed:
    if not settings.STRIP_BOILERPLATE:
        return _BlockWalker(_KEEP_ALL).walk(soup)
    root = content_root(soup)
    if root is None:
        return _BlockWalker(_Chrome(strip=True, in_content=False)).walk(soup)
    # Inside <main> (or its like) a <header> is the content's own: walk it as in a section.
    return _BlockWalker(_Chrome(strip=True, in_content=True)).walk(root, in_section=True)


def parse_html(data: bytes) -> Parsed:
    soup = BeautifulSoup(decode_html(data), "lxml")
    title = _title(soup)
    parsed = _blocks(soup)
    parsed.title = title or parsed.title  # <title>, else the first <h1>
    return parsed

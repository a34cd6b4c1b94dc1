"""Text decoding and normalisation, plus the plain-text and Markdown extractors.

Every extractor (this one, HTML, PDF, DOCX) returns a :class:`Parsed`: a list of
:class:`Segment` s in reading order. ``extract.assemble`` normalises them with the helpers
below and lays them out into one string, so the offsets of the final blocks are computed
in exactly one place.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

import charset_normalizer

from .types import Attachment, ExtractionError

# --- what the extractors hand back ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """One block before normalisation and layout (see ``types.Block``)."""

    text: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    is_heading: bool = False


@dataclass(slots=True)
class Parsed:
    segments: list[Segment] = field(default_factory=list)
    title: str | None = None
    page_count: int | None = None
    # Author, date, sender... found in the file, and files carried inside it (e-mail).
    metadata: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)


class HeadingTracker:
    """The stack of enclosing headings: a level-2 heading under a level-1 gives (h1, h2).

    Levels are plain integers, so a DOCX "Title" can sit above "Heading 1" as level 0.
    """

    def __init__(self) -> None:
        self._stack: list[tuple[int, str]] = []

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text in self._stack)

    def enter(self, level: int, text: str) -> tuple[str, ...]:
        """Open a heading; returns the path that includes it (for the heading block)."""
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        return self.path


# --- decoding ---------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Bytes that never occur in text in any ASCII-compatible encoding: C0 controls except
# tab, LF, VT, FF, CR and ESC (ANSI colours in logs), plus DEL.
_BINARY_BYTES = bytes(
    [*range(0x00, 0x09), 0x0E, 0x0F, *range(0x10, 0x1B), 0x1C, 0x1D, 0x1E, 0x1F, 0x7F]
)
# Real text files are essentially free of those bytes; random or compressed data has ~10%.
_MAX_BINARY_RATIO = 0.05

_BINARY_CHARS = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")

# Without a BOM, charset-normalizer happily "decodes" a few Latin-1 bytes as UTF-16 or as
# EBCDIC, which yields confident garbage; we detect UTF-16 ourselves (see _utf16_codec).
_EXCLUDED_CHARSETS = [
    "utf_16",
    "utf_16_be",
    "utf_16_le",
    "utf_32",
    "utf_32_be",
    "utf_32_le",
    "utf_7",
    "cp037",
    "cp273",
    "cp424",
    "cp500",
    "cp875",
    "cp1026",
    "cp1140",
]


def bom_codec(data: bytes) -> tuple[str, int] | None:
    """The codec announced by a byte-order mark and the mark's length, if any."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return codec, len(bom)
    return None


def _utf16_codec(sample: bytes) -> str | None:
    """Recognise BOM-less UTF-16 (Windows "Unicode" exports): mostly ASCII, so every
    other byte is NUL. Without this such files would look binary."""
    if len(sample) < 4:
        return None
    sample = sample[: len(sample) // 2 * 2]
    even, odd = sample[0::2], sample[1::2]
    half = len(sample) // 2
    if odd.count(0) >= 0.8 * half and even.count(0) <= 0.05 * half:
        codec = "utf-16-le"
    elif even.count(0) >= 0.8 * half and odd.count(0) <= 0.05 * half:
        codec = "utf-16-be"
    else:
        return None
    try:
        sample.decode(codec)
    except UnicodeDecodeError:
        return None
    return codec


def binary_reason(sample: bytes) -> str | None:
    """Why ``sample`` (the head of a file) is not text, or None if it may be text."""
    if not sample or bom_codec(sample) or _utf16_codec(sample):
        return None
    # bytes.translate(None, delete) drops the listed bytes at C speed.
    binary = len(sample) - len(sample.translate(None, _BINARY_BYTES))
    if binary > _MAX_BINARY_RATIO * len(sample):
        return "binary data, not text"
    return None


def _charset_normalizer_decode(data: bytes) -> str | None:
    matches = charset_normalizer.from_bytes(data, cp_exclusion=_EXCLUDED_CHARSETS)
    best = matches.best()
    if best is None:
        return None
    # On short inputs many single-byte charsets tie (same chaos score) and the winner is
    # arbitrary (Latin-1 "très" came back as cp1250 "trčs"). Prefer windows-1252, the
    # usual legacy encoding and the WHATWG default, whenever it is one of the tied ones.
    for match in matches:
        if match.chaos <= best.chaos + 0.01 and "cp1252" in match.could_be_from_charset:
            try:
                return data.decode("cp1252")
            except UnicodeDecodeError:
                break
    return str(best)


def decode_text(data: bytes) -> str:
    """Bytes of a text file to str: BOM, then strict UTF-8, then charset detection.

    Raises ExtractionError when the bytes are not text in any encoding we can detect.
    """
    bom = bom_codec(data)
    if bom is not None:
        codec, size = bom
        # A BOM is a strong statement of intent; replace the odd broken sequence.
        text = data[size:].decode(codec, errors="replace")
    elif (codec16 := _utf16_codec(data[:65536])) is not None:
        text = data.decode(codec16, errors="replace")
    else:
        # NUL never belongs to text in UTF-8 or single-byte charsets, and it confuses the
        # detector; it would be removed below anyway (PostgreSQL rejects it).
        data = data.replace(b"\x00", b"")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            decoded = _charset_normalizer_decode(data)
            if decoded is None:
                raise ExtractionError(
                    "unsupported file type: binary data or an unknown text encoding"
                ) from None
            text = decoded
    # A detector can still pick a charset for data that is not text; what it decoded to
    # would then be full of control characters.
    controls = len(_BINARY_CHARS.findall(text, 0, 65536))
    if controls > _MAX_BINARY_RATIO * min(max(len(text), 1), 65536):
        raise ExtractionError("unsupported file type: binary data, not text")
    return text


# --- normalisation ----------------------------------------------------------------------

_NEWLINES = re.compile(r"\r\n?|[\v\f\x85\u2028\u2029]")
# C0 controls except \t and \n (PostgreSQL rejects NUL; the rest is noise), DEL, C1
# controls (only ever the residue of a wrong decoding) and lone surrogates, which cannot
# be encoded to UTF-8 at all (pypdf can produce them from broken font maps).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_INLINE_SPACE = re.compile(r"[^\S\n]+")  # any whitespace but newline, incl. NBSP
_TRAILING_SPACE = re.compile(r" +\n")
_BLANK_LINES = re.compile(r"\n{3,}")
_BLANK_LINE_SPLIT = re.compile(r"\n[^\S\n]*\n\s*")


def clean(text: str) -> str:
    """Newlines to \\n, no control characters, Unicode NFC."""
    text = _NEWLINES.sub("\n", text)
    text = _CONTROLS.sub("", text)
    return unicodedata.normalize("NFC", text)


def tidy(text: str) -> str:
    """A block's final form: clean, spaces collapsed within lines, at most one blank line
    in a row, no leading or trailing whitespace."""
    text = _INLINE_SPACE.sub(" ", clean(text))
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip()


def one_line(text: str) -> str:
    """Headings and titles: all whitespace collapsed to single spaces."""
    return " ".join(clean(text).split())


def paragraphs(text: str) -> Iterator[str]:
    """Split on blank lines (lines holding only whitespace count as blank)."""
    for part in _BLANK_LINE_SPLIT.split(text):
        if part.strip():
            yield part


# --- plain text and Markdown ------------------------------------------------------------


def parse_plain(data: bytes) -> Parsed:
    text = clean(decode_text(data))
    return Parsed(segments=[Segment(p) for p in paragraphs(text)])


# CommonMark ATX heading: up to 3 spaces of indent, 1-6 '#', then a space or end of line;
# an optional closing run of '#' is not part of the text.
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def parse_markdown(data: bytes) -> Parsed:
    """ATX headings become heading segments; everything else is kept as written, split
    into paragraphs on blank lines. Fenced code is never split and never holds headings
    (a shell comment "# foo" inside ``` is not a heading)."""
    text = clean(decode_text(data))
    parsed = Parsed()
    headings = HeadingTracker()
    lines: list[str] = []
    fence: str | None = None  # the opening fence while inside fenced code

    def flush() -> None:
        if lines:
            parsed.segments.append(Segment("\n".join(lines), heading_path=headings.path))
            lines.clear()

    for line in text.split("\n"):
        if fence is not None:
            lines.append(line)
            stripped = line.strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                fence = None
                flush()
            continue
        if (opening := _FENCE.match(line)) is not None:
            flush()
            fence = opening.group(1)
            lines.append(line)
            continue
        if (heading := _ATX.match(line)) is not None:
            flush()
            title = one_line(heading.group(2) or "")
            if title:  # "#" alone is an empty heading: nothing to show or to nest under
                path = headings.enter(len(heading.group(1)), title)
                parsed.segments.append(Segment(title, heading_path=path, is_heading=True))
                if parsed.title is None and len(heading.group(1)) == 1:
                    parsed.title = title
            continue
        if line.strip():
            lines.append(line)
        else:
            flush()
    flush()
    return parsed


_ATX_STRICT = re.compile(r"#{1,6} \S")


def looks_like_markdown(sample: str) -> bool:
    """Clearly Markdown: it opens with an ATX heading, or has at least two of them.

    One "# ..." line further down is as likely a comment in a config file or script.
    """
    count = 0
    first = True
    for line in sample.split("\n"):
        if not line.strip():
            continue
        is_heading = _ATX_STRICT.match(line) is not None
        if is_heading and first:
            return True
        first = False
        count += is_heading
        if count >= 2:
            return True
    return False

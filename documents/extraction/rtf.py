"""RTF with striprtf: the text of the document (control words, embedded pictures and
objects dropped), then read as plain text. RTF carries no reliable heading structure."""

from __future__ import annotations

from striprtf.striprtf import rtf_to_text

from .text import Parsed, parse_plain

# striprtf walks the text with regular expressions; a group nested this deep is a file
# crafted to make it slow, not a document.
_MAX_BYTES = 20 * 1024 * 1024


def parse_rtf(data: bytes) -> Parsed:
    # RTF is 7-bit ASCII with escapes for everything else; latin-1 maps any byte.
    text = rtf_to_text(data[:_MAX_BYTES].decode("latin-1"), errors="ignore")
    return parse_plain(text.encode("utf-8"))

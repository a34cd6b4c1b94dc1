"""Make document text safe to paste into a prompt.

Documents are data, but a language model reads them as text like any other, so anything
in them that could pass for markup or for an instruction is removed or marked:

- ``<script>``/``<style>`` elements with their content, HTML comments and all other tags;
- ``javascript:``/``vbscript:`` links (a Markdown link keeps its label);
- control and invisible format characters (zero-width, bidi overrides), except tab and
  line breaks;
- instruction-like text ("ignore previous instructions", "you are now ...") and chat role
  markers (``system:``, ``<|im_start|>``, ``[INST]``), handled by ``RAG_INSTRUCTION_POLICY``:
  ``fence`` quotes each such line between ⟦ ⟧ (and drops chat-template tokens, which are
  never prose), ``flag`` leaves the text as it is, ``off`` does not look. Both ``fence`` and
  ``flag`` report the passage as flagged; the answer prompt tells the model that passages
  are quotations and that ⟦ ⟧ marks suspected injected instructions.

The patterns catch the common phrasings, not every possible attack: fencing lowers the
risk that a document steers the model, it cannot remove it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from django.core.exceptions import ImproperlyConfigured

POLICIES = ("fence", "flag", "off")
FENCE_OPEN, FENCE_CLOSE = "⟦", "⟧"
FENCE_LABEL = "quoted instruction-like text: "

_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.I | re.S)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>|<![A-Za-z][^<>]*>")
_SCHEME = r"(?:javascript\s*:|vbscript\s*:|data\s*:\s*text/html)"
# The link's target may hold one level of parentheses: [x](javascript:steal()).
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\(\s*" + _SCHEME + r"(?:[^()]|\([^()]*\))*\)", re.I)
_SCRIPT_URL = re.compile(r"\b" + _SCHEME + r"[^\s\"'<>]*", re.I)
_KEEP = {"\t", "\n", "\r"}

# Tokens of chat templates (ChatML, Llama 2/3, Gemma): never found in real prose.
_TEMPLATE_TOKEN = re.compile(
    r"<\|[a-z_]{2,30}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>", re.I
)
_ROLE_MARKER = re.compile(
    r"^\s*(?:#{1,6}\s*)?(?:system|assistant|developer|user)\s*(?:prompt)?\s*:", re.I | re.M
)
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?"
    r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the)\b[^.\n]{0,20}?"
    r"\b(?:instructions?|prompts?|rules|directions|guidelines|context|messages)\b"
    r"|\byou\s+are\s+now\b"
    r"|\bnew\s+instructions?\s*:"
    r"|\b(?:reveal|print|show|repeat)\b[^.\n]{0,30}\bsystem\s+prompt\b",
    re.I,
)


@dataclass
class Sanitized:
    text: str
    # What was found: "script", "html", "javascript", "control", "instructions".
    flags: list[str] = field(default_factory=list)


def _sub(pattern: re.Pattern[str], repl: str, text: str) -> tuple[str, bool]:
    new, count = pattern.subn(repl, text)
    return new, count > 0


def _strip_markup(text: str, flags: list[str]) -> str:
    text, found = _sub(_SCRIPT, "", text)
    if found:
        flags.append("script")
    text, comments = _sub(_COMMENT, "", text)
    text, tags = _sub(_TAG, "", text)
    if comments or tags:
        flags.append("html")
    text, links = _sub(_MARKDOWN_LINK, r"\1", text)
    text, urls = _sub(_SCRIPT_URL, "", text)
    if links or urls:
        flags.append("javascript")
    return text


def _strip_control(text: str, flags: list[str]) -> str:
    # Our own fence characters too: a document must not be able to close a fence.
    kept = "".join(
        ch
        for ch in text
        if ch in _KEEP
        or (unicodedata.category(ch) not in ("Cc", "Cf") and ch not in (FENCE_OPEN, FENCE_CLOSE))
    )
    if len(kept) != len(text):
        flags.append("control")
    return kept


def _fence_line(line: str) -> str:
    if not line.strip() or not (_INSTRUCTION.search(line) or _ROLE_MARKER.search(line)):
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return f"{indent}{FENCE_OPEN}{FENCE_LABEL}{line.strip()}{FENCE_CLOSE}"


def _instructions(text: str, policy: str, flags: list[str]) -> str:
    if policy == "off":
        return text
    found = any(p.search(text) for p in (_TEMPLATE_TOKEN, _ROLE_MARKER, _INSTRUCTION))
    if not found:
        return text
    flags.append("instructions")
    if policy == "flag":
        return text
    text = _TEMPLATE_TOKEN.sub("", text)
    return "\n".join(_fence_line(line) for line in text.split("\n"))


def sanitize_text(text: str, *, policy: str) -> Sanitized:
    """The text with markup, script links and control characters removed and
    instruction-like lines fenced or flagged per ``policy`` (see the module docstring)."""
    if policy not in POLICIES:
        raise ImproperlyConfigured(
            f"RAG_INSTRUCTION_POLICY must be one of {', '.join(POLICIES)}, not {policy!r}"
        )
    flags: list[str] = []
    # Escaped markup ("&lt;script&gt;") is left as it is: to a model it is text.
    cleaned = _strip_markup(text, flags)
    cleaned = _strip_control(cleaned, flags)
    cleaned = _instructions(cleaned, policy, flags)
    return Sanitized(text=cleaned, flags=flags)

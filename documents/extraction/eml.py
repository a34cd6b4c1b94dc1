"""Saved e-mail (.eml, RFC 5322/MIME) with the standard library's email package: the
subject is the title, sender, recipients and date are metadata (and a first block, so a
search for a sender finds the message), the body is the plain-text part (else the HTML
part, read like any HTML file), and attachments are handed back to be ingested as
documents of their own (documents/services.py). Nested messages are not expanded.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage, Message

from django.conf import settings

from .html import parse_html
from .text import Parsed, Segment, one_line, parse_plain
from .types import Attachment, ExtractionError

_ADDRESS_HEADERS = (("from", "From"), ("to", "To"), ("cc", "Cc"), ("date", "Date"))


def _header(message: Message, name: str) -> str:
    try:
        return one_line(str(message.get(name, "") or ""))
    except Exception:  # a malformed encoded-word: the header is optional
        return ""


def _body(message: EmailMessage) -> Parsed:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return Parsed()
    content = part.get_payload(decode=True) or b""
    if not isinstance(content, bytes):
        return Parsed()
    charset = part.get_content_charset() or "utf-8"
    try:
        text = content.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        text = content.decode("utf-8", errors="replace")
    if part.get_content_subtype() == "html":
        return parse_html(text.encode("utf-8"))
    return parse_plain(text.encode("utf-8"))


def _attachments(message: EmailMessage) -> list[Attachment]:
    found: list[Attachment] = []
    for part in message.iter_attachments():
        if part.get_content_maintype() == "multipart":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            continue
        filename = one_line(part.get_filename() or "") or "attachment"
        found.append(Attachment(filename=filename[:200], data=data))
    limit = settings.EXTRACTION_MAX_ATTACHMENTS
    if len(found) > limit:
        raise ExtractionError(
            f"too many attachments: {len(found)} (at most {limit}, EXTRACTION_MAX_ATTACHMENTS)"
        )
    return found


def parse_eml(data: bytes) -> Parsed:
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage):  # the default policy makes EmailMessages
        raise ExtractionError("corrupt e-mail message")
    subject = _header(message, "subject")
    metadata = {key: value for key, name in _ADDRESS_HEADERS if (value := _header(message, name))}
    if subject:
        metadata["subject"] = subject
    parsed = _body(message)
    lines = [f"{name}: {metadata[key]}" for key, name in _ADDRESS_HEADERS if key in metadata]
    if subject:
        lines.append(f"Subject: {subject}")
    if lines:
        parsed.segments.insert(0, Segment("\n".join(lines)))
    parsed.title = subject or None
    parsed.metadata = metadata
    parsed.attachments = _attachments(message)
    return parsed

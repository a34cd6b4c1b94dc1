"""Property tests (issue #7): the chunker on whatever text the extractors hand it, and the
extractors on whatever bytes users upload.

Chunking runs as the pipeline runs it: a source (plain text, Markdown or HTML written with
unicode, very long words, whitespace runs, headings, markup) goes through ``extract`` and
``chunk_document`` with the configured CHUNK_MAX_TOKENS and CHUNK_OVERLAP_TOKENS. Every
chunk must be an exact span of the extracted text, the spans must come in order and cover
every non-whitespace character, and no chunk may exceed the token limit, counted with the
model's own tokenizer (documents/tokenizer.py), nor overflow the model's window once the
contextual header is put in front of it.

Extraction is fed random and half-valid bytes for each format. It must return a
well-formed result or raise ExtractionError with a message, never another exception, and
never hang: every example runs in a worker process that is killed after a timeout, which
also catches a hang inside C code (a regex, lxml) that no signal could interrupt.

No database: these run on the tokenizer and the extraction libraries only.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import re
import traceback
import zipfile
from collections.abc import Iterator
from multiprocessing.pool import Pool
from typing import Any

import docx
import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reportlab.pdfgen import canvas

from documents.chunk_text import chunk_text
from documents.chunking import MAX_CHARS_PER_TOKEN, ChunkSpan, chunk_document
from documents.extraction import ExtractedText, ExtractionError, extract
from documents.tokenizer import MODEL_MAX_TOKENS, SPECIAL_TOKENS, count_tokens_batch

# --- sources -------------------------------------------------------------------------------

LETTERS = st.characters(categories=["L", "M", "N"])  # any script, combining marks, digits
WORD = st.text(LETTERS, min_size=1, max_size=12) | st.sampled_from(
    ["naïve", "Zürich", "日本語です", "שלום", "Привет", "😀", "a\u0301", "x\u200by", "ﬁnal"]
)
LONG_WORD = st.text(LETTERS, min_size=300, max_size=3000)  # longer than a whole chunk
WHITESPACE = st.text(" \t\n\r\u00a0\u2003\u3000\u2028\x0b\x0c", min_size=1, max_size=40)
PUNCTUATION = st.sampled_from([". ", "! ", "? ", ", ", "; ", "。", "…", " — ", ' "Quoted." '])


@st.composite
def prose(draw: st.DrawFn, max_pieces: int = 60) -> str:
    pieces = draw(
        st.lists(
            st.one_of(WORD, WORD, WORD, PUNCTUATION, WHITESPACE, LONG_WORD),
            max_size=max_pieces,
        )
    )
    return " ".join(pieces)


@st.composite
def markdown(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 5))
        if kind == 0:
            level = draw(st.integers(1, 7))  # 7 hashes is no heading at all
            lines.append("#" * level + draw(st.sampled_from([" ", "", "  "])) + draw(prose(6)))
        elif kind == 1:
            lines.append("```\n# not a heading\n" + draw(prose(10)) + "\n```")
        elif kind == 2:
            lines.append(draw(WHITESPACE))
        else:
            lines.append(draw(prose()))
    return "\n".join(lines)


TAGS = ["p", "div", "h1", "h2", "h3", "li", "td", "pre", "span", "b", "script", "style", "nav"]


@st.composite
def html(draw: st.DrawFn) -> str:
    parts = ["<!doctype html><html><head><title>", draw(prose(4)), "</title></head><body>"]
    for _ in range(draw(st.integers(0, 12))):
        tag = draw(st.sampled_from(TAGS))
        inner = draw(prose(20))
        if draw(st.booleans()):
            inner = inner.replace(" ", " <br>", 1) + " &amp; &lt;x&gt; &#128512;"
        close = draw(st.sampled_from([f"</{tag}>", f"</{tag}>", ""]))  # unclosed tags too
        parts.append(f"<{tag} class='c'>{inner}{close}")
    parts.append("</body></html>")
    return "".join(parts)


SOURCES = st.one_of(
    st.tuples(st.just("notes.txt"), prose(120)),
    st.tuples(st.just("notes.md"), markdown()),
    st.tuples(st.just("page.html"), html()),
)


# --- chunking ------------------------------------------------------------------------------


def _assert_chunking_is_sound(
    extracted: ExtractedText, max_tokens: int, overlap: int
) -> list[ChunkSpan]:
    text = extracted.text
    chunks = chunk_document(extracted, max_tokens=max_tokens, overlap_tokens=overlap)
    assert bool(chunks) == bool(text.strip())

    pieces = [text[c.start : c.end] for c in chunks]
    for chunk, piece in zip(chunks, pieces, strict=True):
        assert 0 <= chunk.start < chunk.end <= len(text)
        assert piece == piece.strip(), f"chunk with whitespace at an edge: {piece[:40]!r}"
        assert all(part and "\n" not in part for part in chunk.heading_path)
    # In order: each chunk starts and ends after the one before (overlap repeats a tail).
    assert [c.start for c in chunks] == sorted({c.start for c in chunks})
    assert [c.end for c in chunks] == sorted({c.end for c in chunks})
    # Covered: every non-whitespace character lies in some chunk.
    covered = bytearray(len(text))
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    missing = [i for i, char in enumerate(text) if not char.isspace() and not covered[i]]
    assert not missing, f"uncovered characters at {missing[:5]}: {text[missing[0]]!r}"
    # Within the limit, counted exactly as the model's tokenizer counts the stored slice.
    counts = count_tokens_batch(pieces)
    assert counts == [c.token_count for c in chunks]
    assert max(counts, default=0) <= max_tokens
    # And bounded in characters: a word without spaces is one [UNK] token however long.
    assert max(map(len, pieces), default=0) <= max_tokens * MAX_CHARS_PER_TOKEN
    # And with the contextual header in front (as the pipeline embeds it), the model
    # still reads all of it.
    embedded = [
        chunk_text(text=piece, title=extracted.title, heading_path=chunk.heading_path).embedded
        for chunk, piece in zip(chunks, pieces, strict=True)
    ]
    for count in count_tokens_batch(embedded):
        assert count + SPECIAL_TOKENS <= MODEL_MAX_TOKENS
    return chunks


CHUNKING_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@CHUNKING_SETTINGS
@given(source=SOURCES)
def test_extracted_sources_chunk_soundly(source: tuple[str, str]) -> None:
    filename, text = source
    try:
        extracted = extract(text.encode(), filename=filename)
    except ExtractionError as error:
        # Only a source with nothing to read may be refused.
        assert str(error) in {"empty file", "no extractable text"}, str(error)
        return
    _assert_chunking_is_sound(
        extracted, django_settings.CHUNK_MAX_TOKENS, django_settings.CHUNK_OVERLAP_TOKENS
    )


@CHUNKING_SETTINGS
@given(text=prose(200), max_tokens=st.sampled_from([16, 40, 200]))
def test_raw_text_chunks_soundly(text: str, max_tokens: int) -> None:
    """The chunker's own contract, on text no extractor tidied (whitespace runs kept)."""
    _assert_chunking_is_sound(
        ExtractedText(text=text, mime_type="text/plain"), max_tokens, max_tokens // 4
    )


# --- giant "words" (issue #13) -------------------------------------------------------------


def _giant_docx() -> bytes:
    """A ~40 KB DOCX holding 9 MiB of one letter: it compresses to almost nothing."""
    document = docx.Document()
    document.add_paragraph("Introduction to the report.")
    document.add_paragraph("a" * (9 * 1024 * 1024))
    document.add_paragraph("Closing remarks about enzymes.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("filename", "make"),
    [
        ("giant.docx", _giant_docx),
        ("line.txt", lambda: b"Opening words. " + b"x" * (3 * 1024 * 1024) + b" closing words."),
    ],
)
def test_a_giant_word_is_cut_into_chunks_bounded_in_characters_and_tokens(
    filename: str, make: Any
) -> None:
    """Once a single chunk of 9.4 MB with token_count 1, which every search then returned
    whole. Now each chunk holds a bounded number of characters and real tokens, and the
    ordinary words around the giant one are still chunked with it."""
    data = make()
    extracted = extract(data, filename=filename)
    assert len(extracted.text) > 3 * 1024 * 1024
    max_tokens = django_settings.CHUNK_MAX_TOKENS
    chunks = _assert_chunking_is_sound(extracted, max_tokens, django_settings.CHUNK_OVERLAP_TOKENS)
    cap = max_tokens * MAX_CHARS_PER_TOKEN
    assert len(chunks) >= len(extracted.text) // cap
    texts = [extracted.text[c.start : c.end] for c in chunks]
    assert texts[0].startswith(("Introduction to the report.", "Opening words."))
    assert texts[-1].endswith(("Closing remarks about enzymes.", "closing words."))


# --- extraction ----------------------------------------------------------------------------

EXAMPLE_TIMEOUT_SECONDS = 20  # a few KB take milliseconds; this is for hangs, not speed
# The message extract() gives an exception no parser anticipated: a parser bug.
UNEXPECTED = re.compile(r"^could not read .+: [A-Za-z_]+$")


def _extract_in_worker(data: bytes, filename: str) -> tuple[str, Any]:
    """Runs in the worker process; returns what happened, never raises."""
    try:
        return "ok", extract(data, filename=filename)
    except ExtractionError as error:
        return "refused", str(error)
    except BaseException:  # noqa: B036 - reported to the test, which fails on it
        return "crashed", traceback.format_exc()


@pytest.fixture(scope="module")
def worker() -> Iterator[list[Pool]]:
    """One worker process (in a list, so a test can replace a worker it had to kill)."""
    context = multiprocessing.get_context("fork")
    pools = [context.Pool(1)]
    yield pools
    pools[0].terminate()


def _extract_with_timeout(worker: list[Pool], data: bytes, filename: str) -> tuple[str, Any]:
    pending = worker[0].apply_async(_extract_in_worker, (data, filename))
    try:
        return pending.get(timeout=EXAMPLE_TIMEOUT_SECONDS)
    except multiprocessing.TimeoutError:
        worker[0].terminate()
        worker[0] = multiprocessing.get_context("fork").Pool(1)
        pytest.fail(f"extract() still running after {EXAMPLE_TIMEOUT_SECONDS}s: {data[:200]!r}")


def _assert_extracts_or_refuses(worker: list[Pool], data: bytes, filename: str) -> None:
    outcome, detail = _extract_with_timeout(worker, data, filename)
    assert outcome != "crashed", detail
    if outcome == "refused":
        assert detail.strip(), "an ExtractionError must say what is wrong"
        assert not UNEXPECTED.match(detail), f"a parser failed unexpectedly: {detail}"
        return
    # Well-formed: blocks index the text exactly, separated by blank lines, storable.
    text = detail.text
    assert text and "\x00" not in text
    text.encode("utf-8")  # no lone surrogates
    assert "\n\n".join(text[b.start : b.end] for b in detail.blocks) == text


@functools.cache
def _real_pdf() -> bytes:
    """A small PDF with a text layer on two pages (reportlab, as in the extraction tests)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer)
    pdf.setTitle("Damaged on purpose")
    for page in range(2):
        for line in range(12):
            pdf.drawString(72, 780 - 16 * line, f"Page {page + 1}, line {line}: aspirin & café")
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


@functools.cache
def _real_docx() -> bytes:
    document = docx.Document()
    document.core_properties.title = "Damaged on purpose"
    document.add_heading("Guide", 0)
    document.add_heading("Installation", 1)
    document.add_paragraph("Download the package first. Then run it.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Debian"
    table.cell(1, 1).text = "apt install product"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _damage(data: bytes, cut: int, flips: list[tuple[int, int]], splice: bytes) -> bytes:
    """``data`` with bytes overwritten, random bytes spliced in, and the end cut off."""
    damaged = bytearray(data)
    for position, value in flips:
        damaged[position % len(damaged)] = value
    middle = cut % len(damaged)
    damaged[middle:middle] = splice
    if cut % 3:  # two times in three, the end is lost too, as in an interrupted upload
        del damaged[max(len(damaged) - cut % 512, 1) :]
    return bytes(damaged)


def _with_main_part(docx_bytes: bytes, transform: Any) -> bytes:
    """The DOCX with word/document.xml transformed and the archive rebuilt intact, so
    the damage reaches the XML parser and python-docx, not just the ZIP reader."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx_bytes)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = transform(data)
            target.writestr(info.filename, data)
    return out.getvalue()


NOISE = st.binary(max_size=3000)
TEXTY = st.text(max_size=1500).map(lambda text: text.encode("utf-8", "surrogatepass"))
FLIPS = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12)


def _damaged(original: Any) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda cut, flips, splice: _damage(original(), cut, flips, splice),
        st.integers(0, 10**6),
        FLIPS,
        st.binary(max_size=64),
    )


def _damaged_docx_xml() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda cut, flips, splice: _with_main_part(
            _real_docx(), lambda xml: _damage(xml, cut, flips, splice)
        ),
        st.integers(0, 10**6),
        FLIPS,
        st.binary(max_size=64) | TEXTY,
    )


# Per format: bytes that reach its extractor (detection goes by content), and a file name.
FORMATS = {
    "plain": st.tuples(NOISE | TEXTY, st.just("a.txt")),
    "markdown": st.tuples(st.builds(lambda b: b"# Title\n" + b, NOISE | TEXTY), st.just("a.md")),
    "html": st.tuples(
        st.builds(lambda b: b"<html><body>" + b, NOISE | TEXTY | html().map(str.encode)),
        st.just("a.html"),
    ),
    "pdf": st.tuples(
        st.builds(lambda b: b"%PDF-1.4\n" + b, NOISE) | _damaged(_real_pdf),
        st.sampled_from(["a.pdf", "a.txt"]),
    ),
    "docx": st.tuples(
        st.builds(lambda b: b"PK\x03\x04" + b, NOISE) | _damaged(_real_docx) | _damaged_docx_xml(),
        st.sampled_from(["a.docx", "a.zip"]),
    ),
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_extractors_on_random_bytes_extract_or_refuse_clearly(
    worker: list[Pool], kind: str
) -> None:
    @settings(
        max_examples=100,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(upload=FORMATS[kind])
    def check(upload: tuple[bytes, str]) -> None:
        _assert_extracts_or_refuses(worker, *upload)

    check()

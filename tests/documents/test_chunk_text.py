"""A chunk's texts besides its own (documents/chunk_text.py): the header the model reads,
the keyword context, and the fingerprint of the chunking settings."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings
from django.test import override_settings

from documents.chunk_text import ChunkingConfig, chunk_text, chunking_settings_fingerprint


def test_chunk_text_builds_header_context_and_embedded_text_once() -> None:
    texts = chunk_text(text="Data were collected daily.", title="Report", heading_path=("Data",))
    assert texts.header == "Report > Data\n\n"
    assert texts.embedded == "Report > Data\n\nData were collected daily."
    # The keyword context leaves out the heading the chunk itself begins with ...
    assert texts.context == "Report"
    # ... and stays when the header is not embedded.
    with override_settings(CHUNK_CONTEXT_HEADER=False):
        plain_texts = chunk_text(text="Other words.", title="Report", heading_path=("Data",))
    assert (plain_texts.header, plain_texts.context) == ("", "Report > Data")
    assert plain_texts.embedded == "Other words."


def test_chunking_settings_fingerprint_names_every_setting() -> None:
    seen = {chunking_settings_fingerprint()}
    for name, value in [
        ("CHUNK_MAX_TOKENS", 180),
        ("CHUNK_OVERLAP_TOKENS", 10),
        ("CHUNK_CONTEXT_HEADER", False),
        ("CHUNK_CONTEXT_HEADER_MAX_TOKENS", 8),
        ("EMBEDDING_MODEL_NAME", "another-model"),
        ("EMBEDDING_BACKEND", "torch" if settings.EMBEDDING_BACKEND == "onnx" else "onnx"),
    ]:
        with override_settings(**{name: value}):
            seen.add(chunking_settings_fingerprint())
    assert len(seen) == 7
    assert chunking_settings_fingerprint() in seen


def test_a_chunking_config_passed_in_wins_over_the_settings() -> None:
    """The evaluation ingests with the header on and off side by side by passing a
    config, not by changing settings at run time."""
    config = replace(ChunkingConfig.from_settings(), context_header=False)
    texts = chunk_text(text="Other words.", title="Report", heading_path=("Data",), config=config)
    assert (texts.header, texts.embedded) == ("", "Other words.")
    assert chunking_settings_fingerprint(config) != chunking_settings_fingerprint()
    with override_settings(CHUNK_CONTEXT_HEADER=False):
        assert chunking_settings_fingerprint(config) == chunking_settings_fingerprint()

"""Rendering scanned PDF pages for OCR in a child process that can be abandoned.

PDFium is C: a page with millions of drawing operations, or an image whose decoder
spins, renders for minutes inside one call that no Python thread can interrupt, and a
page image far larger than its output (a 100,000 pixel wide JPEG XObject) is decoded
whole. The pixel cap (MAX_PIXELS, the output's size) bounds only the bitmap we ask for.
So the pages of one document are rendered by one child process, started when the first
scanned page needs it: each page has OCR_PAGE_TIMEOUT (or what is left of the task's
time) to arrive, the child's address space is capped at RENDER_MEMORY_BYTES, and a page
that overruns either kills the child and fails the document with the reason. The child
costs about 0.3 s to start, next to about 2.4 s of Tesseract per page.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from PIL import Image

from .ocr import MAX_PIXELS, RENDER_DPI, OcrOptions, out_of_time
from .types import ExtractionError

# The child's address space: the PDF, PDFium's decoders and one page bitmap (at most
# MAX_PIXELS bytes in grayscale) fit many times over.
RENDER_MEMORY_BYTES = 2 * 1024**3
# Starting the child (a Python interpreter importing PDFium) and opening the PDF: slow on
# a loaded machine, and not the page's fault, so it has a budget of its own.
START_TIMEOUT = 60.0
# A script of its own, not multiprocessing: django-q's workers are daemonic processes,
# which multiprocessing does not let have children, and a fork of a threaded worker (the
# embedding runtime, the database driver) may deadlock.
_CHILD = Path(__file__).with_name("render_child.py")


class PageRenderer:
    """``with PageRenderer(data, options) as pages: pages.render(number)``."""

    def __init__(self, data: bytes, options: OcrOptions) -> None:
        self._data = data
        self._options = options
        self._process: subprocess.Popen[bytes] | None = None
        self._requests: Connection | None = None
        self._connection: Connection | None = None  # the answers

    def __enter__(self) -> PageRenderer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def render(self, number: int) -> Image.Image:
        connection = self._start(number)
        assert self._requests is not None
        self._requests.send(number)
        kind, value = self._receive(connection, number, self._options.page_timeout)
        if kind != "page":
            raise ExtractionError(str(value))
        mode, size, pixels = value
        return Image.frombytes(mode, size, pixels)

    def close(self) -> None:
        if self._requests is not None:
            try:
                self._requests.send(None)
            except (OSError, ValueError):
                pass
        if self._process is not None:
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def _start(self, number: int) -> Connection:
        if self._connection is not None:
            return self._connection
        self._process = subprocess.Popen(
            # -I: the script's folder is not put on sys.path (its types.py would shadow
            # the standard library's), and no PYTHON* variable or user site applies.
            [sys.executable, "-I", str(_CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None and stdout is not None
        # The Connections own duplicates of the pipes' descriptors (they close them).
        self._requests = Connection(os.dup(stdin.fileno()), readable=False)
        self._connection = Connection(os.dup(stdout.fileno()), writable=False)
        stdin.close()
        stdout.close()
        try:
            self._requests.send((self._data, RENDER_MEMORY_BYTES, RENDER_DPI, MAX_PIXELS))
        except OSError:  # the child died at once
            pass
        kind, value = self._receive(self._connection, number, START_TIMEOUT)
        if kind != "ready":
            raise ExtractionError(str(value))
        return self._connection

    def _receive(self, connection: Connection, number: int, limit: float) -> tuple[str, Any]:
        timeout, cut_short = self._timeout(number, limit)
        try:
            if connection.poll(timeout):
                kind, value = connection.recv()
                return str(kind), value
        except (EOFError, OSError):  # the child died: the memory cap, or PDFium crashed
            self._kill()
            raise ExtractionError(
                f"rendering page {number} failed: the renderer ran out of memory "
                f"({RENDER_MEMORY_BYTES // 1024**2} MB) or crashed"
            ) from None
        self._kill()
        if cut_short:
            raise out_of_time(self._options, number)
        if limit == START_TIMEOUT:
            raise ExtractionError(f"the PDF renderer did not start within {limit:g} s")
        raise ExtractionError(
            f"rendering page {number} for OCR took longer than {limit:g} s (OCR_PAGE_TIMEOUT)"
        )

    def _timeout(self, number: int, timeout: float) -> tuple[float, bool]:
        """Seconds to wait, and whether the task's deadline (not ``timeout``) set them."""
        if self._options.deadline is None:
            return timeout, False
        remaining = self._options.deadline - time.monotonic()
        if remaining <= 0:
            raise out_of_time(self._options, number)
        return min(timeout, remaining), remaining < timeout

    def _kill(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            self._process = None
        for connection in (self._requests, self._connection):
            if connection is not None:
                connection.close()
        self._requests = None
        self._connection = None

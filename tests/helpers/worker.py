"""A real django-q2 worker (`manage.py qcluster`) on the test database, for tests that
need documents processed the way production does it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def database_url() -> str:
    """The test database as a DATABASE_URL (a Unix socket is passed as ?host=/path)."""
    params = connection.get_connection_params()
    return (
        f"postgres://{params['user']}@/{connection.settings_dict['NAME']}"
        f"?host={params.get('host') or 'localhost'}&port={params.get('port') or 5432}"
    )


class LoggedProcess(Protocol):
    log_path: Path

    def output(self) -> str: ...


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    workers: Sequence[LoggedProcess],
    interval: float = 0.05,
) -> Any:
    """Poll until `condition()` is truthy; on timeout fail with the processes' output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    logs = "\n".join(f"--- {w.log_path.name} ---\n{w.output()}" for w in workers)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")


class Worker:
    """A `manage.py qcluster` process group with its output in a log file."""

    def __init__(
        self,
        *,
        database_url: str,
        media_root: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "MEDIA_ROOT": str(media_root),
            "WORKERS": "1",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "qcluster"],
                cwd=BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, to stop what it forks
            )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "running." in self.output():
                return
            if not self.alive():
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the worker did not start:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the whole group at once: the cluster and every process it forked."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=10)

    def stop(self) -> None:
        stop_process_group(self.process, term_seconds=5)


def stop_process_group(process: subprocess.Popen[bytes], *, term_seconds: float) -> None:
    """SIGTERM a process's whole group, then SIGKILL whatever is left of it (children
    that outlived their parent included)."""
    for sig, wait in ((signal.SIGTERM, term_seconds), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def show_output_if_failed(
    request: Any, failures_before: int, processes: list[Any], **extra_logs: str
) -> None:
    """After a failed test, print each process's log (and any extra named logs)."""
    if request.session.testsfailed <= failures_before:
        return
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for process in processes:
            print(f"\n--- {process.log_path.name} ---\n{process.output()}")
        for name, text in extra_logs.items():
            print(f"\n--- {name} ---\n{text}")

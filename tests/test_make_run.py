"""`make run` for real: Ctrl-C from a terminal leaves nothing running and exits cleanly, a
stale list of the embedded server's users does not keep it running, a warm start is ready
quickly, and `make stop-db` stops a server left by a crash.

Each `make run` runs in its own session with a pseudo-terminal as its controlling
terminal, and Ctrl-C is typed into that terminal: the kernel then sends SIGINT to the
terminal's foreground process group, exactly as for a person at a keyboard.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import signal
import subprocess
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.helpers.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
COLD_START_SECONDS = 600  # first run: initdb, every migration, collectstatic
WARM_START_SECONDS = 15  # the bound the issue sets for a second, unchanged start

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _take_terminal() -> None:
    # In the child: a new session whose controlling terminal is stdin (the pty's slave).
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    terminal: int  # the pty's master: what a terminal emulator writes keystrokes to
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ctrl_c(self) -> None:
        os.write(self.terminal, b"\x03")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.terminal)


@dataclass
class Site:
    var_dir: Path
    port: int
    env: dict[str, str]

    @property
    def pgdata(self) -> Path:
        return self.var_dir / "pgdata"

    def make(self, target: str, log_name: str) -> Run:
        master, slave = pty.openpty()
        log = self.var_dir.parent / f"{log_name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["make", target],
                cwd=ROOT,
                env=self.env,
                stdin=slave,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_take_terminal,
            )
        os.close(slave)
        return Run(process, master, log)

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, run: Run, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.ready():
                return time.monotonic() - start
            assert run.process.poll() is None, f"make run exited early:\n{run.output()}"
            time.sleep(0.2)
        raise AssertionError(f"not ready within {timeout} s:\n{run.output()}")

    def processes(self) -> list[str]:
        """Processes of this site: its PostgreSQL (by data folder) and anything started
        with its environment (supervisor, web server, worker and the worker's pool)."""
        found = []
        for process in psutil.process_iter(["pid", "cmdline"]):
            try:
                cmdline = " ".join(process.info["cmdline"] or [])
                ours = str(self.pgdata) in cmdline or (
                    process.environ().get("RAGSITE_VAR_DIR") == str(self.var_dir)
                )
                if ours and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{process.pid} {cmdline}")
            except psutil.Error:
                continue  # exited meanwhile
        return found

    def postgres_running(self) -> bool:
        return any("postgres -D" in line for line in self.processes())

    def handles(self) -> list[int]:
        path = self.pgdata / ".handle_pids.json"
        return list(json.loads(path.read_text())) if path.exists() else []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """One data folder for the module: only the first start is a cold one."""
    tmp_path = tmp_path_factory.mktemp("make-run")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "EMBEDDED_PGDATA")}
    env.update(
        RAGSITE_VAR_DIR=str(tmp_path / "var"),
        STATIC_ROOT=str(tmp_path / "var" / "static"),
        MEDIA_ROOT=str(tmp_path / "var" / "media"),
        PORT=str(free_port()),
        DEBUG="false",
        EMBEDDED_KEEP_RUNNING="false",
    )
    site = Site(tmp_path / "var", int(env["PORT"]), env)
    site.var_dir.mkdir()
    yield site
    for line in site.processes():  # never leave a server behind, whatever failed
        os.kill(int(line.split()[0]), signal.SIGKILL)


def _stop_with_ctrl_c(site: Site, run: Run) -> None:
    run.ctrl_c()
    try:
        status = run.process.wait(timeout=60)
    finally:
        run.close()
    output = run.output()
    assert status == 0, output
    assert "***" not in output and "Terminated" not in output, output
    assert "Traceback" not in output, output
    deadline = time.monotonic() + 10  # PostgreSQL's last backends exit just after pg_ctl
    while site.processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert site.processes() == [], output
    assert site.handles() == []


def _dead_pid() -> int:
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def test_ctrl_c_stops_everything_and_a_warm_start_is_quick(site: Site) -> None:
    cold = site.make("run", "cold")
    site.wait_ready(cold, COLD_START_SECONDS)
    assert site.postgres_running()
    _stop_with_ctrl_c(site, cold)

    # A crash of an earlier run left ids of dead processes in the list of the server's
    # users: the server must still stop when this run ends.
    (site.pgdata / ".handle_pids.json").write_text(json.dumps([_dead_pid(), _dead_pid()]))

    warm = site.make("run", "warm")
    seconds = site.wait_ready(warm, WARM_START_SECONDS)
    assert seconds < WARM_START_SECONDS
    output = warm.output()
    assert "Collecting static files" not in output and "Applying " not in output, output
    _stop_with_ctrl_c(site, warm)


def test_stop_db_stops_a_server_left_by_a_crash(site: Site) -> None:
    run = site.make("run", "crashed")
    site.wait_ready(run, COLD_START_SECONDS)  # cold only if this test runs first
    supervisor = psutil.Process(run.process.pid).children()[0]
    supervisor.kill()  # a crash: no clean-up of any kind
    run.process.wait(timeout=60)
    run.close()
    deadline = time.monotonic() + 30  # the web server and the worker follow their parent
    while time.monotonic() < deadline:
        if all("postgres" in line for line in site.processes()):
            break
        time.sleep(0.2)
    assert site.postgres_running(), "the crash should have left PostgreSQL running"

    stop = _make_stop_db(site)
    assert "stopped the embedded PostgreSQL" in stop, stop
    deadline = time.monotonic() + 10
    while site.processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert site.processes() == []
    assert "no embedded PostgreSQL running" in _make_stop_db(site)  # and says so, calmly


def _make_stop_db(site: Site) -> str:
    stop = subprocess.run(
        ["make", "stop-db"], cwd=ROOT, env=site.env, capture_output=True, text=True, timeout=120
    )
    assert stop.returncode == 0, stop.stdout + stop.stderr
    return stop.stdout

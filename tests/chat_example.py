"""The chat example (examples/chatserver) served by a real ``manage.py`` subprocess, for the tests
of tests/example (HTTP and websockets) and tests/browser (Chromium).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ws4redis_tornado.embedded import free_port

from .utils import MS

REPO_ROOT = Path(__file__).resolve().parents[1]
MANAGE = REPO_ROOT / "examples" / "chatserver" / "manage.py"
USERS = ("admin", "john", "mary")  # examples/chatserver/chat/fixtures/chat.json
PASSWORD = "secret"
STARTUP_TIMEOUT = 30_000 * MS


def chat_environment(database: Path, redis_url: str, **variables: str) -> dict[str, str]:
    """The environment of a chat server: this suite's Django and ws4redis variables left out."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WS4REDIS_", "CHATSERVER_", "DJANGO_")) and key != "RUN_MAIN"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatserver.settings",
        CHATSERVER_DATABASE=str(database),
        CHATSERVER_REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
        **variables,
    )
    return env


class ChatServer:
    """The chat example in a subprocess: start, wait until it serves, kill, freeze, restart."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, command: str = "runserver", port: int | None = None):
        self.env = env
        self.command = command
        self.port = port or free_port()
        self.log_path = log_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ChatServer:
        """Start the server and return once it answers HTTP; fail with its output if it does not."""
        args = [sys.executable, str(MANAGE), self.command, f"127.0.0.1:{self.port}", "--noreload"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._answers():
            if self.process.poll() is not None:
                pytest.fail(f"{self.command} exited with {self.process.returncode}:\n{self.output()}", pytrace=False)
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"{self.command} did not serve within {STARTUP_TIMEOUT}s:\n{self.output()}", pytrace=False)
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=1) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """End the process at once (SIGKILL): its sockets drop without a closing handshake."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.signal(signal.SIGCONT)  # a frozen process would never see SIGTERM
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

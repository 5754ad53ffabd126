"""The chat example (examples/chatserver) served by a real ``manage.py`` subprocess, for the tests
of tests/example (HTTP and websockets) and tests/browser (Chromium).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ws4redis_tornado.embedded import free_port

from .processes import ManagedProcess
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


class ChatServer(ManagedProcess):
    """The chat example in a subprocess, ready once its login page answers 200; it may be restarted on its port."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, command: str = "runserver", port: int | None = None):
        self.port = port or free_port()
        super().__init__(
            [sys.executable, str(MANAGE), command, f"127.0.0.1:{self.port}", "--noreload"],
            log_dir=log_dir,
            log_name=f"server-{self.port}",
            merge_output=True,
            env=env,
            ready_url=f"{self.url}/accounts/login/",
            ready_status=200,
            ready_timeout=STARTUP_TIMEOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

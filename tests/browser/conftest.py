"""Chromium, through Playwright, against the chat example served by real ``runserver`` processes.

Each server is a subprocess (``manage.py demo`` or ``runserver --noreload``) on a free port, using
the suite's private Redis under its own key prefix; all of them share one SQLite database, so a
login made once holds for every server (cookies do not depend on the port).

Without Playwright or Chromium the tests are skipped, unless ``WS4REDIS_REQUIRE_BROWSER=1``, which
makes them fail instead (CI sets it).
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest

from ..chat_example import PASSWORD, REPO_ROOT, USERS, ChatServer, chat_environment
from ..utils import MS

SCREENSHOTS = REPO_ROOT / "build" / "screenshots"

# runserver sends a heartbeat every 4 s (+-5%); pages count a miss every CLIENT_HEARTBEAT_MS and give
# up at the third in a row, so two intervals must outlast the server's: 6 s leaves 1.8 s for delays.
# (The client's default, 5 s, takes up to 15 s to notice a hung server.)
CLIENT_HEARTBEAT_MS = 3000
# Reconnection attempts at most 1 s apart, so that a restarted server is found within a second.
RECONNECT_MAX_MS = 1000
TIMEOUT = round(10_000 * MS * 1000)  # 10 s, in milliseconds as Playwright counts: for anything to arrive

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

REQUIRE_BROWSER = os.environ.get("WS4REDIS_REQUIRE_BROWSER") == "1"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def skip_or_fail(missing: str) -> NoReturn:
    """Skip the test (or module) for want of ``missing``; fail it with WS4REDIS_REQUIRE_BROWSER=1."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{missing}, and WS4REDIS_REQUIRE_BROWSER=1 requires the browser tests", pytrace=False)
    pytest.skip(f"{missing}; set WS4REDIS_REQUIRE_BROWSER=1 to make this a failure", allow_module_level=True)


def require_playwright() -> ModuleType:
    """Return ``playwright.sync_api``; call it at the top of a test module, where it may skip."""
    try:
        return importlib.import_module("playwright.sync_api")
    except ImportError:
        skip_or_fail("Playwright for Python is not installed (pip install playwright)")


# -- servers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; skips (or fails, with WS4REDIS_REQUIRE_BROWSER=1) when there is none."""
    path = find_chromium()
    if path is None:
        skip_or_fail("Chromium is not installed (apt-get install chromium): no 'chromium' on PATH")
    return path


@pytest.fixture(scope="session")
def chat_dir(chromium) -> Iterator[Path]:
    """A directory for the shared database and the servers' logs."""
    path = Path(tempfile.mkdtemp(prefix="ws4redis-chat-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def chat_env(chat_dir: Path, redis_url: str) -> dict[str, str]:
    """The environment of every chat server; without this suite's own Django and ws4redis variables."""
    return chat_environment(
        chat_dir / "db.sqlite3",
        redis_url,
        CHATSERVER_RECONNECT_MAX_MS=str(RECONNECT_MAX_MS),
        CHATSERVER_HEARTBEAT_INTERVAL_MS=str(CLIENT_HEARTBEAT_MS),
    )


@pytest.fixture(scope="session")
def chat_server(chat_env: dict[str, str], chat_dir: Path) -> Iterator[ChatServer]:
    """The server most tests share, started with the README's ``manage.py demo`` (migrate, users)."""
    server = ChatServer(env={**chat_env, "CHATSERVER_REDIS_PREFIX": "shared"}, log_dir=chat_dir, command="demo")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def start_server(chat_server: ChatServer, chat_env: dict[str, str], chat_dir: Path, prefix: str):
    """Start a server of the test's own (runserver, same database, own key prefix); stopped after."""
    servers: list[ChatServer] = []

    def start(**env: str) -> ChatServer:
        server = ChatServer(env={**chat_env, "CHATSERVER_REDIS_PREFIX": prefix, **env}, log_dir=chat_dir)
        servers.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


# -- the browser -----------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Any]:
    # Package scope, not session: Playwright's sync API keeps an event loop running in this
    # thread while it lives, and the IOLoop tests that follow need the thread to themselves.
    with require_playwright().sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="package")
def logins(browser, chat_server: ChatServer) -> dict[str, dict]:
    """Log each demo user in through the login page, once per run: their contexts' storage states.

    The three log in at the same time, so that their password hashes are computed in parallel.
    """
    pages = {}
    for username in USERS:
        page = browser.new_context().new_page()
        page.goto(f"{chat_server.url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        pages[username] = page
    states = {}
    for username, page in pages.items():
        page.wait_for_url(f"{chat_server.url}/chat/")
        states[username] = page.context.storage_state()
        page.context.close()
    return states


@pytest.fixture
def open_page(browser, logins) -> Iterator[Callable[..., Any]]:
    """Open ``url`` in a fresh browser context, logged in as ``user`` (None: anonymous).

    Waits until the page's websocket is connected. The test fails if a page raised a JavaScript error.
    """
    contexts = []
    errors: list[str] = []

    def open_(
        url: str, user: str | None = None, *, connected: bool = True, on_page: Callable[[Any], None] | None = None
    ) -> Any:
        """Open the page; ``on_page(page)`` runs before it loads, e.g. to listen to its websockets."""
        context = browser.new_context(
            storage_state=logins[user] if user else None, viewport={"width": 1200, "height": 760}
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(f"{user or 'anonymous'} at {url}: {error}"))
        if on_page is not None:
            on_page(page)
        page.goto(url)
        if connected:
            status = page.locator("#status")
            require_playwright().expect(status).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, "JavaScript errors:\n" + "\n".join(errors)

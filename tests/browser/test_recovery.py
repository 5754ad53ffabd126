"""A page with ``recover: true`` loses and repeats nothing while its websocket server restarts.

The server is the real ``python -m ws4redis_tornado`` with history on, killed and started again on
the same port while a second one, on the same Redis, keeps publishing a numbered stream. The page
(ws4redis.js and a few lines that record what arrives) is written into the server's /health
document: it has the server's origin, which the origin check asks for, and Chromium takes it for a
loopback page, which it lets open loopback websockets (not so a page Playwright makes up).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from websockets.sync.client import connect

from ..chat_example import REPO_ROOT
from ..processes import ServerProcess
from ..utils import MS
from .conftest import TIMEOUT, require_playwright
from .test_reconnect import wait_on_page

if TYPE_CHECKING:
    from playwright.sync_api import Page

expect = require_playwright().expect

CLIENT_JS = REPO_ROOT / "django_bridge" / "static" / "django_bridge" / "js" / "ws4redis.js"
FACILITY = "numbers"
STREAM_INTERVAL = 20 * MS  # between two published messages
WAIT = TIMEOUT / 1000  # seconds

PAGE = '<!doctype html><meta charset="utf-8"><title>recovery</title><p id="status" data-state="connecting"></p>'
RECORDER = """
var state = document.getElementById('status');  // not `status`: window.status is taken
window.received = [];
window.lost = [];
window.connects = 0;
WS4Redis({
  uri: 'ws://' + location.host + '/ws/FACILITY?subscribe-broadcast',
  recover: true,
  reconnect_base_ms: 100,
  reconnect_max_ms: 500,
  connected: function () { window.connects++; state.dataset.state = 'connected'; },
  disconnected: function () { state.dataset.state = 'disconnected'; },
  receive_message: function (message) { window.received.push(message); },
  not_recovered: function (labels) { window.lost.push(labels); }
});
""".replace("FACILITY", FACILITY)


class NumberStream:
    """Publishes "1", "2", ... through a server, each confirmed by its echo, until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = f"ws://127.0.0.1:{server.port}/ws/{FACILITY}?subscribe-broadcast&publish-broadcast&echo"
        self.published = 0
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="number-stream", daemon=True)

    def __enter__(self) -> NumberStream:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> int:
        """Stop publishing; return how many messages were published."""
        self._stopping.set()
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the publisher did not stop"
        if self.error is not None:
            raise AssertionError(f"the publisher failed: {self.error!r}") from self.error
        return self.published

    def _run(self) -> None:
        try:
            with connect(self.url, open_timeout=WAIT) as ws:
                while not self._stopping.wait(STREAM_INTERVAL):
                    message = str(self.published + 1)
                    ws.send(message)
                    echo = ws.recv(timeout=WAIT)
                    if echo != message:
                        raise AssertionError(f"published {message!r}, got {echo!r} back")
                    self.published += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc


@pytest.fixture
def servers(redis_url: str, prefix: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """The page's server and the publishers', both with history, on the test's own key prefix."""
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            started.append(ServerProcess("--demo", "--history-size", "100", redis_url=redis_url, prefix=prefix))
            started[-1].start()
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def blank_page(browser: Any) -> Iterator[Page]:
    """A fresh page; the test fails if it raised a JavaScript error."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, "JavaScript errors:\n" + "\n".join(errors)


def open_recovering_page(page: Page, server: ServerProcess) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/health")
    page.set_content(PAGE)
    page.add_script_tag(path=CLIENT_JS)
    page.add_script_tag(content=RECORDER)
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=TIMEOUT)


def received(page: Page) -> list[str]:
    return page.evaluate("window.received")


def test_page_receives_every_message_once_across_a_server_restart(blank_page, servers):
    page = blank_page
    server, other = servers
    open_recovering_page(page, server)
    status = page.locator("#status")

    with NumberStream(other) as stream:
        wait_on_page(page, lambda: len(received(page)) >= 10, WAIT, "10 messages before the restart")
        server.kill()
        expect(status).to_have_attribute("data-state", "disconnected", timeout=TIMEOUT)
        down_at = stream.published
        wait_on_page(page, lambda: stream.published >= down_at + 10, WAIT, "10 messages published meanwhile")
        server.start()  # on the same port
        expect(status).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
        up_at = stream.published
        wait_on_page(page, lambda: stream.published >= up_at + 10, WAIT, "10 messages published after")
        total = stream.stop()

    wait_on_page(page, lambda: len(received(page)) >= total, WAIT, f"all {total} messages on the page")
    assert received(page) == [str(n) for n in range(1, total + 1)]
    assert page.evaluate("window.lost") == []
    assert page.evaluate("window.connects") == 2

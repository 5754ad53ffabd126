"""Pages reconnect by themselves: after the server is killed and restarted, and after it hangs."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..utils import wait_until_blocking
from .conftest import CLIENT_HEARTBEAT_MS, TIMEOUT, require_playwright
from .test_chat import messages, send, unique

if TYPE_CHECKING:
    from playwright.sync_api import Page, WebSocket

expect = require_playwright().expect

HEARTBEAT = "--heartbeat--"  # WS4REDIS_HEARTBEAT of the example
INTERVAL = CLIENT_HEARTBEAT_MS / 1000
SERVER_INTERVAL = 4.2  # runserver's heartbeat interval, 4 s, plus its timer's jitter


def status(page: Page):
    return page.locator("#status")


def test_page_reconnects_after_the_server_is_killed_and_restarted(open_page, start_server):
    server = start_server()
    john = open_page(f"{server.url}/chat/", "john")
    mary = open_page(f"{server.url}/chat/", "mary")

    server.kill()
    for page in (john, mary):
        expect(page.locator(".notice.bad", has_text="Connection lost")).to_have_count(1, timeout=TIMEOUT)
        expect(status(page)).not_to_have_attribute("data-state", "connected")

    server.start()  # on the same port
    for page in (john, mary):
        expect(status(page)).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
        expect(page.locator(".notice.good", has_text="Reconnected.")).to_have_count(1)

    after = unique("Back again?")
    send(mary, after)
    expect(messages(john, after)).to_have_count(1, timeout=TIMEOUT)


class Heartbeats:
    """Counts the heartbeats a page's websockets send and receive."""

    def __init__(self) -> None:
        self.sockets = 0
        self.sent = 0
        self.received = 0

    def attach(self, page: Page) -> None:
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws: WebSocket) -> None:
        self.sockets += 1
        self.sent = self.received = 0  # per socket
        ws.on("framesent", lambda payload: self._count("sent", payload))
        ws.on("framereceived", lambda payload: self._count("received", payload))

    def _count(self, direction: str, payload: str | bytes) -> None:
        if payload == HEARTBEAT:
            setattr(self, direction, getattr(self, direction) + 1)


def wait_on_page(page: Page, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate``, letting Playwright deliver the page's events meanwhile."""
    wait_until_blocking(predicate, timeout, what=what, pause=lambda seconds: page.wait_for_timeout(seconds * 1000))


def test_page_reconnects_when_heartbeats_stop(open_page, start_server):
    server = start_server()
    beats = Heartbeats()
    # The direct-message page publishes nothing over its socket, so no heartbeat can come back
    # as an echo of its own: what resets its count is the server's.
    john = open_page(f"{server.url}/chat/user/", "john", on_page=beats.attach)
    lost = john.locator(".notice.bad", has_text="Connection lost (missed heartbeats)")

    # Without an answer the page sends 2 heartbeats and gives up at its third; a third one sent
    # on the same socket shows that the server's heartbeats reset its count.
    wait_on_page(john, lambda: beats.sent >= 3, 3 * INTERVAL + SERVER_INTERVAL, "3 heartbeats sent")
    assert beats.sockets == 1
    expect(lost).to_have_count(0)

    # Freeze the server just after a heartbeat. A stopped process keeps its TCP connections open
    # but answers nothing: no close, no error; only the missing heartbeats tell.
    seen = beats.received
    wait_on_page(john, lambda: beats.received > seen, SERVER_INTERVAL + 1, "a heartbeat received")
    server.send_signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        # The page gives up at its third tick after that heartbeat: after 2 intervals, within 3.
        expect(lost).to_have_count(1, timeout=(3 * INTERVAL + 2) * 1000)
        assert time.monotonic() - frozen_at > 2 * INTERVAL - 0.5
        expect(status(john)).not_to_have_attribute("data-state", "connected")
    finally:
        server.send_signal(signal.SIGCONT)

    # The page's next handshake has been waiting in the listen queue: answered now.
    expect(status(john)).to_have_attribute("data-state", "connected", timeout=TIMEOUT)
    expect(john.locator(".notice.good", has_text="Reconnected.")).to_have_count(1)
    after = unique("Still here")
    send(john, after, recipient="mary")
    expect(messages(john, after)).to_have_count(1, timeout=TIMEOUT)  # john's own copy

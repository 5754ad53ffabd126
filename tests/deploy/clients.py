"""Clients of the stack for tests/deploy: the publish form through HAProxy, reconnecting websockets."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import urllib.parse
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from ..utils import MS
from .launcher import Stack

FACILITY = "demo"
GOING_AWAY = 1001


def publish(stack: Stack, message: str, facility: str = FACILITY) -> int:
    """Broadcast ``message`` through the example's form, as a browser would; return the receivers.

    The page sets the CSRF cookie, and the POST sends it back with the token in X-CSRFToken.
    """
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    with opener.open(stack.url + "/", timeout=5000 * MS) as page:
        page.read()
    token = next(cookie.value for cookie in cookies if cookie.name == "csrftoken")
    body = urllib.parse.urlencode({"message": message, "facility": facility}).encode()
    request = urllib.request.Request(stack.url + "/publish/", data=body, headers={"X-CSRFToken": token})
    with opener.open(request, timeout=5000 * MS) as response:
        return json.loads(response.read())["receivers"]


class ReconnectingClient:
    """A websocket that reconnects after every close, as ws4redis.js does in a browser.

    It records what it receives and how each connection ended. ``max_connections`` bounds the
    loop; a failed attempt (refused, or 503 while no server is up) is retried after ``retry_delay``.
    """

    def __init__(self, url: str, *, max_connections: int = 5, retry_delay: float = 50 * MS) -> None:
        self.url = url
        self.max_connections = max_connections
        self.retry_delay = retry_delay
        self.messages: list[str] = []
        self.close_codes: list[int | None] = []
        self.failures: list[str] = []
        self.connections = 0
        self.open = False

    async def run(self) -> None:
        while self.connections < self.max_connections and len(self.failures) < 100:
            try:
                async with connect(self.url, open_timeout=5000 * MS) as ws:
                    self.connections += 1
                    self.open = True
                    try:
                        async for message in ws:
                            self.messages.append(str(message))
                    except ConnectionClosed:
                        pass
                    self.open = False
                    self.close_codes.append(ws.close_code)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                self.failures.append(repr(exc))
                await asyncio.sleep(self.retry_delay)

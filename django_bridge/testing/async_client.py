"""Websocket clients for async tests: real sockets to the live server, the handshake a browser sends.

A connection opens ``WEBSOCKET_URL<facility>?<parameters>`` with the ``Origin`` of the server's own
pages and, for ``user=``, the session cookie of a real login (Django's ``Client.force_login``, so
the ``user_logged_in`` receivers run and the server reads the user and groups from the database).
Every wait is bounded and fails the test with an ``AssertionError`` that says what did not happen.

They run on the caller's event loop, with Tornado's own websocket client; :mod:`.client` is their
synchronous facade.

Heartbeat frames (``WS4REDIS_HEARTBEAT``) are not messages: ``receive`` skips them unless the
connection is opened with ``heartbeats=True``.
"""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Mapping
from http.cookies import Morsel
from typing import TYPE_CHECKING, Any, Literal

from django.test import Client
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from ws4redis_tornado.frames import CloseCode

if TYPE_CHECKING:
    from .server import LiveWebsocketServer

__all__ = [
    "DEFAULT_SILENCE",
    "DEFAULT_TIMEOUT",
    "OWN_ORIGIN",
    "AsyncWebsocket",
    "AsyncWebsocketClient",
    "Cookies",
    "HandshakeRefused",
    "Origin",
    "cookie_values",
    "handshake_request",
    "login_cookies",
    "open_websocket",
]

DEFAULT_TIMEOUT = 3.0
"""Seconds a connect, a receive or a close waits at most; a passing test never waits that long."""

DEFAULT_SILENCE = 0.1
"""Seconds :meth:`AsyncWebsocket.assert_no_message` watches for a message that must not come."""


class _Origin(enum.Enum):
    OWN = "the server's own origin"


OWN_ORIGIN: Literal[_Origin.OWN] = _Origin.OWN
"""The default ``origin``: the server's own, as its pages send (``None`` sends no ``Origin`` at all)."""

Origin = str | None | Literal[_Origin.OWN]
Cookies = Mapping[str, "str | Morsel[Any]"]


class HandshakeRefused(AssertionError):
    """The server answered a websocket handshake with an HTTP status instead of 101.

    Attributes:
        url: the websocket URL.
        status: the HTTP status, e.g. 403.
        reason: the HTTP reason phrase, which carries the server's reason (``cross-origin websocket refused``).
        body: the response body.
        headers: the response headers.
    """

    def __init__(self, url: str, status: int, reason: str, body: bytes, headers: Mapping[str, str]) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = dict(headers)
        text = body.decode("utf-8", "replace").strip()
        super().__init__(f"{url}: handshake refused with {status} {reason}" + (f": {text[:200]}" if text else ""))


def login_cookies(user: Any) -> dict[str, str]:
    """Return the cookies of a browser in which ``user`` is logged in, by Django's ``Client.force_login``.

    The session is real: it is saved in ``SESSION_ENGINE`` and ``user_logged_in`` is sent. Call it
    where the test may use the database.
    """
    client = Client()
    client.force_login(user)
    return cookie_values(client.cookies)


def cookie_values(cookies: Cookies | None) -> dict[str, str]:
    """Return ``cookies`` (a dict, or a test ``Client``'s ``cookies``) as plain name-value pairs."""
    if not cookies:
        return {}
    return {name: value.value if isinstance(value, Morsel) else str(value) for name, value in cookies.items()}


class AsyncWebsocket:
    """An open websocket, for async tests, on the event loop that opened it.

    Attributes:
        url: the URL it was opened with.
    """

    def __init__(self, connection: WebSocketClientConnection, *, url: str, timeout: float, skip: str | None) -> None:
        self.url = url
        self._connection = connection
        self._timeout = timeout
        self._skip = skip
        self._ended = False

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame (the server's answer, when the client closed); None while open."""
        return self._connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason of the server's close frame; None while open."""
        return self._connection.close_reason

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected, if any."""
        return self._connection.selected_subprotocol

    async def receive(self, timeout: float | None = None) -> str | bytes:
        """Return the next message: ``str`` from a text frame, ``bytes`` from a binary one.

        Raises:
            AssertionError: no message came within ``timeout`` seconds, or the socket was closed.
        """
        timeout = self._timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                message = await self._next_message()
        except TimeoutError:
            raise AssertionError(f"{self.url}: no message within {timeout:.2f}s") from None
        if message is None:
            raise AssertionError(f"{self.url}: closed by the server ({self._close_description()}) before a message")
        return message

    async def receive_json(self, timeout: float | None = None) -> Any:
        """Return the next message, parsed as JSON."""
        return json.loads(await self.receive(timeout))

    async def assert_no_message(self, within: float = DEFAULT_SILENCE) -> None:
        """Fail if a message comes within ``within`` seconds, or the server closes the socket.

        A deliberate wait: it always takes ``within`` seconds when the test passes.
        """
        try:
            async with asyncio.timeout(within):
                message = await self._next_message()
        except TimeoutError:
            return
        if message is None:
            raise AssertionError(f"{self.url}: closed by the server ({self._close_description()})")
        raise AssertionError(f"{self.url}: expected no message within {within:.2f}s, received {message!r}")

    async def send(self, message: str | bytes) -> None:
        """Send ``message``: a text frame for ``str``, a binary one for ``bytes``."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._connection.write_message(message, binary=isinstance(message, bytes))
        except TimeoutError:
            raise AssertionError(f"{self.url}: the message was not sent within {self._timeout:.2f}s") from None

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as JSON in a text frame."""
        await self.send(json.dumps(value))

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "", timeout: float | None = None) -> None:
        """Close the socket and wait for the server's close frame; unread messages are dropped."""
        if not self._ended:
            self._connection.close(code, reason)
        await self._read_to_end(timeout, "answer the close")

    async def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        """Wait until the server closes the socket; return its close code and reason.

        Messages that come first are dropped. ``(None, None)`` means the connection ended without a
        close frame.
        """
        await self._read_to_end(timeout, "close the socket")
        return self.close_code, self.close_reason

    async def _next_message(self) -> str | bytes | None:
        """The next frame that is not a heartbeat; None once the connection has ended."""
        while not self._ended:
            message = await self._connection.read_message()
            if message is None:
                self._ended = True
                self._connection.close()  # nothing left to send: it only lets the connection go
            elif message != self._skip:
                return message
        return None

    async def _read_to_end(self, timeout: float | None, what: str) -> None:
        timeout = self._timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                while await self._next_message() is not None:
                    pass
        except TimeoutError:
            raise AssertionError(f"{self.url}: the server did not {what} within {timeout:.2f}s") from None

    def _close_description(self) -> str:
        if self.close_code is None:
            return "no close frame"
        return f"{self.close_code} {self.close_reason!r}" if self.close_reason else str(self.close_code)

    async def __aenter__(self) -> AsyncWebsocket:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncWebsocketClient:
    """Opens websockets on a live server from async tests; :meth:`close` (or ``async with``) closes them all.

    ``timeout`` bounds each connect, receive and close unless the call gives its own.
    """

    def __init__(self, server: LiveWebsocketServer, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.server = server
        self.timeout = timeout
        self._sockets: list[AsyncWebsocket] = []

    async def connect(
        self,
        facility: str,
        *parameters: str,
        user: Any = None,
        cookies: Cookies | None = None,
        origin: Origin = OWN_ORIGIN,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        subprotocols: list[str] | None = None,
        heartbeats: bool = False,
        timeout: float | None = None,
    ) -> AsyncWebsocket:
        """Open a websocket on ``facility``: ``connect("chat", "subscribe-user", user=john)``.

        ``parameters`` are the URL's (``"subscribe-broadcast"``, ``"echo"`` ...), ``query`` those with
        a value. ``user`` logs a user in for this socket, with a session of its own (the session is
        created in a thread, as Django code called from async code is); without it the socket is
        anonymous, unless ``cookies`` (say a test ``Client``'s) carry a session. ``origin`` defaults
        to the server's own; ``None`` sends none, as a client that is no browser.

        Raises:
            HandshakeRefused: the server answered with an HTTP status (400, 403, 503 ...).
        """
        cookie_jar = cookie_values(cookies)
        if user is not None:
            from asgiref.sync import sync_to_async

            cookie_jar.update(await sync_to_async(login_cookies)(user))
        request = handshake_request(
            self.server, facility, parameters, query=query, cookies=cookie_jar, origin=origin, headers=headers
        )
        socket = await open_websocket(
            request,
            subprotocols=subprotocols,
            timeout=self.timeout if timeout is None else timeout,
            skip=None if heartbeats else self.server.heartbeat,
        )
        self._sockets.append(socket)
        return socket

    async def refused(self, facility: str, *parameters: str, **options: Any) -> HandshakeRefused:
        """Open a websocket as :meth:`connect` does, expecting a refusal, and return it.

        Raises:
            AssertionError: the server accepted the socket (it is closed again).
        """
        try:
            socket = await self.connect(facility, *parameters, **options)
        except HandshakeRefused as refusal:
            return refusal
        await socket.close()
        raise AssertionError(f"{socket.url}: the handshake was accepted")

    async def close(self) -> None:
        """Close every socket this client opened that is still open."""
        sockets, self._sockets = self._sockets, []
        outcomes = await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def __aenter__(self) -> AsyncWebsocketClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def handshake_request(
    server: LiveWebsocketServer,
    facility: str,
    parameters: tuple[str, ...],
    *,
    query: Mapping[str, str] | None,
    cookies: Mapping[str, str],
    origin: Origin,
    headers: Mapping[str, str] | None,
) -> HTTPRequest:
    """The handshake's URL and headers, as a browser on one of the server's pages would send them."""
    sent = dict(headers or {})
    if origin is OWN_ORIGIN:
        sent.setdefault("Origin", server.origin)
    elif origin is not None:
        sent["Origin"] = origin
    if cookies:
        sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return HTTPRequest(server.ws_url(facility, *parameters, **(query or {})), headers=sent)


async def open_websocket(
    request: HTTPRequest, *, subprotocols: list[str] | None, timeout: float, skip: str | None
) -> AsyncWebsocket:
    """Open the websocket of ``request`` on the running loop.

    Raises:
        HandshakeRefused: the server answered with an HTTP status instead of 101.
    """
    request.connect_timeout = request.request_timeout = timeout
    try:
        connection = await websocket_connect(request, subprotocols=subprotocols)
    except HTTPClientError as exc:
        response = exc.response
        if response is None:  # no answer at all: a timeout, a refused connection
            raise
        raise HandshakeRefused(request.url, response.code, response.reason, response.body, response.headers) from None
    return AsyncWebsocket(connection, url=request.url, timeout=timeout, skip=skip)

"""Websocket clients for synchronous tests: the async ones of :mod:`.async_client`, behind a facade.

Each call runs the async client's coroutine on the live server's event loop thread and waits for
it, a little longer than the call's own bound; Tornado's websocket client does the talking there.
The methods and their arguments are the async ones', without ``await``.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ws4redis_tornado.frames import CloseCode

from .async_client import (
    DEFAULT_SILENCE,
    DEFAULT_TIMEOUT,
    OWN_ORIGIN,
    AsyncWebsocket,
    Cookies,
    HandshakeRefused,
    Origin,
    cookie_values,
    handshake_request,
    login_cookies,
    open_websocket,
)

if TYPE_CHECKING:
    from .server import LiveWebsocketServer

__all__ = ["Websocket", "WebsocketClient"]

T = TypeVar("T")

_LOOP_MARGIN = 2.0
"""Seconds the facade gives the server's event loop beyond a call's own timeout."""


class Websocket:
    """An open websocket, for synchronous tests: each call runs on the live server's event loop and waits.

    The methods are :class:`AsyncWebsocket`'s, without ``await``.
    """

    def __init__(self, socket: AsyncWebsocket, server: LiveWebsocketServer, timeout: float) -> None:
        self._socket = socket
        self._server = server
        self._timeout = timeout

    @property
    def url(self) -> str:
        return self._socket.url

    @property
    def close_code(self) -> int | None:
        """The code of the server's close frame (the server's answer, when the client closed); None while open."""
        return self._socket.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason of the server's close frame; None while open."""
        return self._socket.close_reason

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server selected, if any."""
        return self._socket.subprotocol

    def receive(self, timeout: float | None = None) -> str | bytes:
        """Return the next message (``str`` or ``bytes``); fail if none comes within ``timeout`` seconds."""
        return self._run(self._socket.receive(timeout), timeout)

    def receive_json(self, timeout: float | None = None) -> Any:
        """Return the next message, parsed as JSON."""
        return self._run(self._socket.receive_json(timeout), timeout)

    def assert_no_message(self, within: float = DEFAULT_SILENCE) -> None:
        """Fail if a message comes within ``within`` seconds, or the server closes the socket."""
        self._run(self._socket.assert_no_message(within), within)

    def send(self, message: str | bytes) -> None:
        """Send ``message``: a text frame for ``str``, a binary one for ``bytes``."""
        self._run(self._socket.send(message), None)

    def send_json(self, value: Any) -> None:
        """Send ``value`` as JSON in a text frame."""
        self._run(self._socket.send_json(value), None)

    def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "", timeout: float | None = None) -> None:
        """Close the socket and wait for the server's close frame; unread messages are dropped."""
        self._run(self._socket.close(code, reason, timeout), timeout)

    def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        """Wait until the server closes the socket; return its close code and reason."""
        return self._run(self._socket.wait_closed(timeout), timeout)

    def _run(self, call: Coroutine[Any, Any, T], timeout: float | None) -> T:
        return self._server.run(call, (self._timeout if timeout is None else timeout) + _LOOP_MARGIN)

    def __enter__(self) -> Websocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class WebsocketClient:
    """Opens websockets on a live server from synchronous tests; :meth:`close` (or ``with``) closes them all.

    ``timeout`` bounds each connect, receive and close unless the call gives its own. The methods
    are :class:`AsyncWebsocketClient`'s, without ``await``; ``user=`` logs in in the calling thread,
    as Django's test ``Client`` does.
    """

    def __init__(self, server: LiveWebsocketServer, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.server = server
        self.timeout = timeout
        self._sockets: list[Websocket] = []

    def connect(
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
    ) -> Websocket:
        """Open a websocket on ``facility``: ``connect("chat", "subscribe-user", user=john)``.

        See :meth:`AsyncWebsocketClient.connect` for the arguments.

        Raises:
            HandshakeRefused: the server answered with an HTTP status (400, 403, 503 ...).
        """
        cookie_jar = cookie_values(cookies)
        if user is not None:
            cookie_jar.update(login_cookies(user))
        request = handshake_request(
            self.server, facility, parameters, query=query, cookies=cookie_jar, origin=origin, headers=headers
        )
        timeout = self.timeout if timeout is None else timeout
        opening = open_websocket(
            request, subprotocols=subprotocols, timeout=timeout, skip=None if heartbeats else self.server.heartbeat
        )
        socket = Websocket(self.server.run(opening, timeout + _LOOP_MARGIN), self.server, self.timeout)
        self._sockets.append(socket)
        return socket

    def refused(self, facility: str, *parameters: str, **options: Any) -> HandshakeRefused:
        """Open a websocket as :meth:`connect` does, expecting a refusal, and return it.

        Raises:
            AssertionError: the server accepted the socket (it is closed again).
        """
        try:
            socket = self.connect(facility, *parameters, **options)
        except HandshakeRefused as refusal:
            return refusal
        socket.close()
        raise AssertionError(f"{socket.url}: the handshake was accepted")

    def close(self) -> None:
        """Close every socket this client opened that is still open."""
        sockets, self._sockets = self._sockets, []
        failures = []
        for socket in sockets:
            try:
                socket.close()
            except AssertionError as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    def __enter__(self) -> WebsocketClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

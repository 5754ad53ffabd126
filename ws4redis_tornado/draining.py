"""Stopping one server gracefully: what SIGTERM does to the connections it holds.

A drain stops accepting, closes every websocket with 1001 (Going Away) so clients reconnect to
another server, lets HTTP requests already under way finish, and gives up when the grace period
ends. It also waits for the closing handshake of each websocket it closed: a socket leaves the
application's set as soon as its close frame is sent, while its connection (and its ``close`` log
event) ends only when the peer answers, or when Tornado drops a silent peer after 5 seconds.
Neither the responses nor the closing handshakes signal their end, so the drain polls, on one timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.iostream import IOStream

from .listening import GuardedHTTPServer

if TYPE_CHECKING:
    from .server import WebSocketApplication

__all__ = ["DrainingHTTPServer", "drain"]

logger = logging.getLogger(__name__)

_POLL_INTERVAL = 0.02
_ABORT_WAIT = 0.5
"""Seconds the drain waits, after dropping silent peers, for their sockets' on_close() to run."""


class DrainingHTTPServer(GuardedHTTPServer):
    """An HTTPServer that knows which connections are in the middle of a request.

    Tornado's ``close_all_connections()`` closes every connection at once, in-flight responses
    included. :meth:`start_draining` closes only the idle keep-alive connections, and each busy one
    as soon as its response has been written. It also counts the websockets whose closing
    handshake has begun: those handed over to it, and those upgraded while it drains (the
    application closes them at once).
    """

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._open: set[Any] = set()
        self._busy: set[Any] = set()
        self._draining = False
        self._closing: list[IOStream] = []

    @property
    def open_connections(self) -> int:
        """HTTP connections, busy or idle (websockets leave this count once upgraded)."""
        return len(self._open)

    @property
    def busy_connections(self) -> int:
        """HTTP connections whose request has begun and whose response is not written yet."""
        return len(self._busy)

    def start_draining(self, closing_websockets: Iterable[IOStream] = ()) -> None:
        """Stop accepting, close idle connections, and close the others once they are idle.

        ``closing_websockets`` are the streams of websockets sent a close frame: :meth:`closing_websockets`
        counts them until their peers have answered.
        """
        self.stop()
        self._draining = True
        self._closing.extend(closing_websockets)
        for conn in self._open - self._busy:
            conn.stream.close()

    def closing_websockets(self) -> int:
        """How many websockets closed during the drain still wait for their peer's close frame."""
        self._closing = [stream for stream in self._closing if not stream.closed()]
        return len(self._closing)

    def abort_closing_websockets(self) -> None:
        """Close the connections of websockets whose peers never answered the close frame."""
        for stream in self._closing:
            stream.close()
        self._closing = []

    def start_request(self, server_conn: Any, request_conn: httputil.HTTPConnection) -> Any:
        # The serving loop asks for a delegate once the previous response has been flushed, so
        # the connection is idle from here until the next request's headers arrive.
        self._open.add(server_conn)
        self._busy.discard(server_conn)
        if self._draining:
            # Closing the stream ends the connection's serving loop, which then calls on_close().
            server_conn.stream.close()
        delegate = super().start_request(server_conn, request_conn)
        return _RequestTracker(delegate, lambda: self._busy.add(server_conn))

    def on_close(self, server_conn: Any) -> None:
        self._open.discard(server_conn)
        self._busy.discard(server_conn)
        # Tornado leaves a stream open here only when a websocket took it over; while draining, the
        # application has just sent that websocket a close frame.
        if self._draining and not server_conn.stream.closed():
            self._closing.append(server_conn.stream)
        super().on_close(server_conn)


class _RequestTracker(httputil.HTTPMessageDelegate):
    """Passes everything to ``delegate`` and calls ``on_headers`` when a request begins."""

    def __init__(self, delegate: httputil.HTTPMessageDelegate, on_headers: Callable[[], None]) -> None:
        self.delegate = delegate
        self.on_headers = on_headers

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        self.on_headers()
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()


async def drain(server: DrainingHTTPServer, app: WebSocketApplication, *, grace_period: float) -> bool:
    """Stop accepting, close websockets with 1001, let requests and closing handshakes finish.

    Returns False if requests were still running when ``grace_period`` seconds had passed (their
    connections are closed then; the threads running them are not stopped).
    """
    app.stop()
    handlers = [socket for socket in app.sockets if socket.ws_connection is not None]
    websockets = [socket.ws_connection.stream for socket in handlers]  # type: ignore[union-attr]
    app.close_sockets()
    server.start_draining(websockets)
    logger.info(
        "draining: closed %d websockets, waiting up to %.1fs for %d requests",
        len(websockets),
        grace_period,
        server.busy_connections,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_period
    # Polled: neither a response nor a closing handshake has an end to wait on (see the module docstring).
    while (server.open_connections or server.closing_websockets()) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(_POLL_INTERVAL)
    busy = server.busy_connections
    if busy:
        logger.warning("%d requests still running after %.1fs; closing their connections", busy, grace_period)
    await server.close_all_connections()
    # Peers that never answered the close frame: drop them, so that every websocket's on_close()
    # runs (and logs its close) before the loop ends, on every Tornado.
    server.abort_closing_websockets()
    end = loop.time() + _ABORT_WAIT
    while any(handler.ws_connection is not None for handler in handlers) and loop.time() < end:  # noqa: ASYNC110
        await asyncio.sleep(0)
    return not busy

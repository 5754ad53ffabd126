"""Accepting connections without letting stalled or surplus clients take the process down.

Two of Tornado's defaults do not suit a server that faces the Internet. A connection that has not
finished sending its request headers is kept for an hour (``idle_connection_timeout``), so a few
thousand half-sent handshakes hold as many file descriptors for that long. And when the process
runs out of descriptors, Tornado's accept handler raises on every attempt: the listening socket
stays readable, so the IOLoop calls it again at once, spinning at full CPU and logging a traceback
each time while nobody is served.

:class:`GuardedHTTPServer` bounds the first with ``handshake_timeout`` and replaces the accept
handler: out of descriptors, it stops accepting for :data:`ACCEPT_PAUSE` seconds and tries again,
logging one warning per episode, while the connections it holds are served as usual. The
websocket-only server, ``runtornado`` and ``runserver`` all build on it, through
:class:`~ws4redis_tornado.draining.DrainingHTTPServer`.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

try:
    # Imported now: with no descriptor left, importing would fail when it is needed.
    import resource
except ImportError:  # not on Unix
    resource = None  # type: ignore[assignment]

__all__ = ["ACCEPT_PAUSE", "GuardedHTTPServer", "add_accept_handler"]

logger = logging.getLogger(__name__)

ACCEPT_PAUSE = 0.5
"""Seconds without accepting after accept() failed for want of descriptors or memory."""

# accept()'s errors that say the process or the system is out of a resource, not that a client
# misbehaved: waiting is the only cure.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# Connections accepted per readiness event at most, so a flood cannot starve the other callbacks
# (Tornado's own handler uses its listen backlog, 128, the same way).
_ACCEPTS_PER_EVENT = 128


class GuardedHTTPServer(HTTPServer):
    """An HTTPServer that closes connections slow to send their headers and survives EMFILE.

    ``handshake_timeout`` (seconds, required) bounds the time from accepting a connection, or from
    the end of its previous response, to the end of the next request's headers. It becomes
    Tornado's ``idle_connection_timeout``; once a connection is upgraded to a websocket, Tornado
    no longer reads requests on it, so the bound no longer applies.
    """

    # One keyword more than HTTPServer takes, and a required one, so that no server of ours gets
    # Tornado's hour by omission.
    def initialize(self, *args: Any, handshake_timeout: float, **kwargs: Any) -> None:  # type: ignore[override]
        kwargs["idle_connection_timeout"] = handshake_timeout
        super().initialize(*args, **kwargs)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        # TCPServer.add_sockets with our accept handler. stop() reads these two dicts of
        # TCPServer's; tests/core/test_listening.py would fail if they changed.
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = add_accept_handler(sock, self._handle_connection)


def add_accept_handler(
    sock: socket.socket, callback: Callable[[socket.socket, Any], None], *, pause: float = ACCEPT_PAUSE
) -> Callable[[], None]:
    """Like ``tornado.netutil.add_accept_handler``, but pauses while out of descriptors.

    Returns the function that stops accepting (and cancels a pending retry).
    """
    return _Acceptor(sock, callback, pause).remove


class _Acceptor:
    """Accepts connections on one listening socket for the IOLoop it was created on."""

    def __init__(self, sock: socket.socket, callback: Callable[[socket.socket, Any], None], pause: float) -> None:
        self.sock = sock
        self.callback = callback
        self.pause = pause
        self.io_loop = IOLoop.current()
        self.removed = False
        # While paused: the retry's handle. While an episode lasts: when it began.
        self._retry: object | None = None
        self._paused_since: float | None = None
        self.io_loop.add_handler(sock, self._on_readable, IOLoop.READ)

    def _on_readable(self, fd: Any, events: int) -> None:
        for _ in range(_ACCEPTS_PER_EVENT):
            if self.removed:
                return  # the callback stopped the server
            try:
                connection, address = self.sock.accept()
            except BlockingIOError:
                return  # accepted everything that was waiting
            except ConnectionAbortedError:
                continue  # closed by the peer while still queued
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise
                self._pause(exc)
                return
            if self._paused_since is not None:
                self._recovered()
            self.callback(connection, address)

    def _pause(self, exc: OSError) -> None:
        """Stop watching the socket for ``pause`` seconds; warn once per episode."""
        self.io_loop.remove_handler(self.sock)
        self._retry = self.io_loop.call_later(self.pause, self._resume)
        if self._paused_since is not None:
            return
        self._paused_since = self.io_loop.time()
        address, error, limit = _address(self.sock), exc.strerror or str(exc), _open_files_limit()
        logger.warning(
            "cannot accept connections on %s: %s (open files limit: %s); pausing accepts for %.1fs"
            " at a time until descriptors are free, connections already open are still served",
            address,
            error,
            limit,
            self.pause,
            extra=_event("accept_paused", address=address, error=error, open_files_limit=limit),
        )

    def _resume(self) -> None:
        self._retry = None
        if not self.removed:
            self.io_loop.add_handler(self.sock, self._on_readable, IOLoop.READ)

    def _recovered(self) -> None:
        assert self._paused_since is not None
        paused_for = self.io_loop.time() - self._paused_since
        self._paused_since = None
        address = _address(self.sock)
        logger.info(
            "accepting connections on %s again after %.1fs",
            address,
            paused_for,
            extra=_event("accept_resumed", address=address, paused_for=round(paused_for, 1)),
        )

    def remove(self) -> None:
        self.removed = True
        if self._retry is not None:
            self.io_loop.remove_timeout(self._retry)
            self._retry = None
        else:
            self.io_loop.remove_handler(self.sock)


def _event(name: str, **fields: object) -> dict[str, object]:
    """``extra`` that lets :class:`~ws4redis_tornado.logs.JsonFormatter` render a record as an event."""
    return {"event": name, "fields": fields}


def _address(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "a closed socket"
    if isinstance(name, str | bytes):  # a Unix socket's path
        return repr(name)
    host, port = name[:2]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def _open_files_limit() -> str:
    if resource is None:
        return "unknown"
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)

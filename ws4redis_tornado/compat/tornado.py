"""Tornado's private names that ws4redis-tornado relies on, in one place, checked at import.

Tornado has no public way to do a few things this project needs: build a websocket protocol
without Tornado's per-socket ping task, hold client frames to RFC 6455, answer permessage-deflate
on the server's own terms and inflate a client's message with the right close code on failure,
write a ready-made frame without ``IOStream.write``'s per-call bookkeeping, drop a finished
handshake's headers (from the handler and from the HTTP connection it came on), read a
response's size for the request log, route the WSGI container's log line, or tell that a client
hung up during a handshake. Each of those reaches into Tornado's private names, and does it
here; :class:`~ws4redis_tornado.protocol.StrictProtocol`, which has to override private hooks as
a subclass, takes its base class from here, where those hooks are listed.

Importing this module checks that the installed Tornado still has every name listed, and raises
ImportError naming what is missing: a Tornado that changed fails at import instead of with an
AttributeError on a live socket. Written for, and tested with, Tornado 6.5.2 to 6.6.
"""

from __future__ import annotations

import inspect
import socket
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import tornado
import tornado.httpserver
import tornado.websocket
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection
from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.iostream import IOStream, SSLIOStream, StreamBufferFullError
from tornado.web import RequestHandler
from tornado.websocket import WebSocketProtocol13
from tornado.wsgi import WSGIContainer

__all__ = [
    "PROTOCOL_HOOKS",
    "PROTOCOL_STATE",
    "TESTED_TORNADO",
    "DecompressTooLargeError",
    "LoggedWSGIContainer",
    "WebSocketProtocol13",
    "direct_socket",
    "empty_headers",
    "forget_request_on_connection",
    "missing_attributes",
    "missing_in_tornado",
    "missing_methods",
    "missing_parameters",
    "reason_phrase",
    "replace_response_headers",
    "require",
    "response_header",
    "stream_of",
    "websocket_params",
    "write_rest",
]

TESTED_TORNADO = "6.5.2 to 6.6"
"""The Tornado releases this module was written for and the test suite runs against."""

PROTOCOL_HOOKS = ("_receive_frame", "_read_bytes", "_handle_message", "_parse_extensions_header")
"""``WebSocketProtocol13``'s private methods that StrictProtocol overrides."""

PROTOCOL_STATE = (
    "_decompressor",
    "_frame_compressed",
    "_message_bytes_in",
    "client_terminated",
    "server_terminated",
    "stream",
)
"""``WebSocketProtocol13``'s private (or undocumented) attributes that StrictProtocol reads or sets."""

_PROTOCOL_HELPERS = ("_run_callback",)


# -- what this project uses ---------------------------------------------------------------------

DecompressTooLargeError: type[Exception] = getattr(tornado.websocket, "_DecompressTooLargeError", Exception)
"""What Tornado's inflater raises when a compressed message inflates past ``max_message_size``."""


# Parameters objects without compression options of their own, by (max_message_size, compression on).
_SHARED_PARAMS: dict[tuple[int, bool], Any] = {}


def websocket_params(*, max_message_size: int, compression_options: dict[str, Any] | None) -> Any:
    """Return the parameters object ``WebSocketProtocol13`` takes, with Tornado's own pinging off.

    Tornado builds it inside ``WebSocketHandler.get_websocket_protocol``, which this project
    overrides to use StrictProtocol. Tornado only reads it, so sockets with equal parameters and
    no (or empty) compression options share one: it would stay for as long as each socket does.
    """
    if compression_options:
        return _new_params(max_message_size, compression_options)
    key = (max_message_size, compression_options is not None)
    params = _SHARED_PARAMS.get(key)
    if params is None:
        params = _SHARED_PARAMS[key] = _new_params(max_message_size, compression_options)
    return params


def _new_params(max_message_size: int, compression_options: dict[str, Any] | None) -> Any:
    return tornado.websocket._WebSocketParams(
        ping_interval=None, max_message_size=max_message_size, compression_options=compression_options
    )


def direct_socket(stream: IOStream) -> socket.socket | None:
    """The socket to ``send()`` to directly, or None when the stream must write instead.

    A direct ``send()`` skips the Future and bookkeeping ``IOStream.write`` does per call. It is
    only right while the stream has nothing queued (the new bytes would overtake it) and is not
    TLS; None also when the stream has no socket left.
    """
    if stream._write_buffer or isinstance(stream, SSLIOStream):
        return None
    return stream.socket


def write_rest(stream: IOStream, data: bytes, sent: int = 0) -> bool:
    """Write what a direct ``send()`` left of ``data`` (from byte ``sent`` on) through the stream.

    Returns False when the stream's buffer bound was hit (the caller closes the socket). Raises
    tornado.iostream.StreamClosedError when the stream is closed.
    """
    try:
        stream.write(memoryview(data)[sent:] if sent else data)
    except StreamBufferFullError:
        return False
    return True


def stream_of(request: HTTPServerRequest) -> IOStream | None:
    """The stream of the connection ``request`` came on; None once the connection let go of it."""
    return getattr(request.connection, "stream", None)


def reason_phrase(handler: RequestHandler) -> str:
    """The reason phrase of the status ``handler`` answers with (Tornado has a getter for the status only)."""
    return handler._reason


def response_header(handler: RequestHandler, name: str) -> str | None:
    """A header of ``handler``'s response as it was sent (Tornado keeps them only in private)."""
    return getattr(handler, "_headers", {}).get(name)


def replace_response_headers(handler: RequestHandler, headers: HTTPHeaders) -> None:
    """Replace the response headers ``handler`` holds, e.g. by a shared empty set once they are sent."""
    handler._headers = headers


_NO_ADDRESSES: frozenset[str] = frozenset()

# HTTPHeaders' tables: Tornado 6.6 keeps _as_list and _combined_cache, earlier releases _dict and _as_list.
_HEADER_TABLES = ("_as_list", "_dict", "_combined_cache")


def empty_headers(headers: HTTPHeaders) -> None:
    """Empty ``headers`` in place, freeing its tables and values.

    Tornado's ``WebSocketHandler.get()`` keeps the handshake's headers in a local variable for as
    long as the socket is open, without reading them again; replacing ``request.headers`` alone
    does not free them.
    """
    for name in _HEADER_TABLES:
        table = getattr(headers, name, None)
        if isinstance(table, dict):
            table.clear()
    if hasattr(headers, "_last_key"):
        headers._last_key = None


def forget_request_on_connection(request: HTTPServerRequest) -> None:
    """Let the HTTP connection of an upgraded ``request`` drop what it kept of the handshake.

    Once a websocket took the stream over, Tornado's ``HTTP1Connection`` serves no further
    request, yet keeps the parsed request line and headers, and its context keeps a fresh empty
    set of trusted proxies (read only while headers are parsed): about 1.4 KiB per socket.
    """
    connection = request.connection
    if isinstance(connection, HTTP1Connection):
        connection._request_headers = None
        connection._request_start_line = None
    context = getattr(connection, "context", None)
    if isinstance(context, tornado.httpserver._HTTPRequestContext) and not context.trusted_downstream:
        # Shared by the connection's server side, which reads no more headers either.
        context.trusted_downstream = _NO_ADDRESSES


class LoggedWSGIContainer(WSGIContainer):
    """A ``WSGIContainer`` whose per-request log line goes through :meth:`log_response`.

    Tornado's container logs each request from a private method; subclasses override the public
    hook instead.
    """

    def _log(self, status_code: int, request: HTTPServerRequest) -> None:
        self.log_response(status_code, request)

    def log_response(self, status_code: int, request: HTTPServerRequest) -> None:
        """Log one answered request; by default on ``tornado.access``, as Tornado does."""
        super()._log(status_code, request)


# -- the checks ---------------------------------------------------------------------------------


def missing_methods(cls: type, names: Iterable[str]) -> list[str]:
    """Return ``Class.name()`` for each of ``names`` that ``cls`` has no method by."""
    return [f"{cls.__qualname__}.{name}()" for name in names if not callable(getattr(cls, name, None))]


def missing_attributes(cls: type, names: Iterable[str]) -> list[str]:
    """Return ``Class.name`` for each of ``names`` that neither ``cls`` nor any code of its methods has.

    Instance attributes exist only once an instance does; a name that no method of the class or
    its bases reads or sets is one Tornado stopped using.
    """
    used = _names_used_by(cls)
    return [f"{cls.__qualname__}.{name}" for name in names if name not in used and not hasattr(cls, name)]


def missing_parameters(function: Callable[..., Any], names: Iterable[str]) -> list[str]:
    """Return ``function(name=...)`` for each of ``names`` that ``function`` takes no parameter by."""
    parameters: Mapping[str, object]
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    return [f"{function.__qualname__}({name}=...)" for name in names if name not in parameters]


def require(missing: Iterable[str]) -> None:
    """Raise ImportError naming what ``missing`` lists, if anything, and the Tornado this was written for."""
    missing = list(missing)
    if missing:
        raise ImportError(
            f"ws4redis-tornado was written for Tornado {TESTED_TORNADO}, and the installed Tornado "
            f"{tornado.version} lacks what it relies on: {', '.join(missing)}. Install a Tornado in that range."
        )


def missing_in_tornado() -> list[str]:
    """Return what the installed Tornado lacks of the private names listed in this module."""
    missing: list[str] = []
    params = getattr(tornado.websocket, "_WebSocketParams", None)
    if params is None:
        missing.append("tornado.websocket._WebSocketParams")
    else:
        missing += missing_parameters(params, ("ping_interval", "max_message_size", "compression_options"))
    if not hasattr(tornado.websocket, "_DecompressTooLargeError"):
        missing.append("tornado.websocket._DecompressTooLargeError")
    missing += missing_parameters(WebSocketProtocol13, ("handler", "mask_outgoing", "params"))
    missing += missing_methods(WebSocketProtocol13, (*PROTOCOL_HOOKS, *_PROTOCOL_HELPERS, "close"))
    missing += missing_attributes(WebSocketProtocol13, PROTOCOL_STATE)
    missing += missing_attributes(IOStream, ("_write_buffer", "socket", "max_write_buffer_size"))
    missing += missing_attributes(RequestHandler, ("_headers", "_reason"))
    # DrainingHTTPServer (ws4redis_tornado.draining) closes a server connection's stream too.
    missing += missing_attributes(HTTP1Connection, ("stream",))
    missing += missing_attributes(HTTP1ServerConnection, ("stream",))
    missing += missing_attributes(HTTPHeaders, ("_as_list",))
    missing += missing_attributes(HTTP1Connection, ("_request_headers", "_request_start_line", "context"))
    context = getattr(tornado.httpserver, "_HTTPRequestContext", None)
    if context is None:
        missing.append("tornado.httpserver._HTTPRequestContext")
    else:
        missing += missing_attributes(context, ("trusted_downstream",))
    missing += missing_methods(WSGIContainer, ("_log",))
    if callable(getattr(WSGIContainer, "_log", None)):
        missing += missing_parameters(WSGIContainer._log, ("status_code", "request"))
    if not inspect.iscoroutinefunction(getattr(WSGIContainer, "handle_request", None)):
        missing.append("async WSGIContainer.handle_request()")
    return missing


def _names_used_by(cls: type) -> set[str]:
    # The attribute and global names that the code of every method of cls and its bases mentions.
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            continue
        for value in vars(klass).values():
            for function in (value, getattr(value, "__func__", None), getattr(value, "fget", None)):
                code = getattr(function, "__code__", None)
                if isinstance(code, types.CodeType):
                    names |= _code_names(code)
    return names


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _code_names(constant)
    return names


require(missing_in_tornado())

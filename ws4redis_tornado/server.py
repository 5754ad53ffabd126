"""The websocket-only server: the Tornado application and the process lifecycle around it."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import shlex
import signal
from collections.abc import Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from tornado.httpserver import HTTPServer

from .broker import Broker
from .channels import Audience, channel_key
from .config import Config
from .exceptions import CannotListen
from .handler import AllowedChannels, ProcessRequest, RedisWebSocketHandler
from .heartbeat import Heartbeat
from .keepalive import Pinger
from .listening import GuardedHTTPServer
from .protocol import CLOSE_GOING_AWAY
from .subscriber import RedisSubscriber
from .writes import FrameWriter

__all__ = ["CLOSE_GOING_AWAY", "HEALTH_TIMEOUT", "HealthHandler", "WebSocketApplication", "serve", "subscriptions_only"]

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT = 1.0
"""Seconds a health check's two round trips to Redis may take in all before it answers 503."""
_DEMO_PAGE = Path(__file__).with_name("static") / "demo.html"
_DEMO_FACILITY = "demo"


async def subscriptions_only(request: Any, channels: list[str]) -> list[str]:
    """An ``allowed_channels`` hook that keeps the ``subscribe-*`` parameters: clients only listen.

    A coroutine function, so it runs on the IOLoop instead of in the thread pool.
    """
    return [channel for channel in channels if not channel.startswith("publish-")]


class HealthHandler(tornado.web.RequestHandler):
    """``GET`` answers 200 while Redis answers on both of the broker's connections, 503 when not.

    Each answer rests on a PING on the command pool and one on the pub/sub connection, both
    back within :data:`HEALTH_TIMEOUT`; concurrent checks share one probe. The numbers of sockets and
    channels are shown only with ``Config.health_detail``: the URL needs no credentials.
    """

    async def get(self) -> None:
        app = self.application
        assert isinstance(app, WebSocketApplication)
        broker = app.broker
        up = await broker.probe(HEALTH_TIMEOUT)
        body: dict[str, object] = {"redis": "up" if up else "down"}
        if broker.config.health_detail:
            body.update(sockets=len(app.sockets), channels=broker.channel_count)
        self.set_status(200 if up else 503)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))


class DemoHandler(tornado.web.RequestHandler):
    """A page that subscribes to the ``demo`` facility, shows what arrives and how to publish to it."""

    def initialize(self, *, config: Config) -> None:
        self.config = config

    def get(self) -> None:
        page = _DEMO_PAGE.read_text(encoding="utf-8")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        page = page.replace("{{ websocket_url }}", self.config.websocket_url)
        self.finish(page.replace("{{ publish_command }}", html.escape(demo_publish_command(self.config))))


def demo_publish_command(config: Config, message: str = "Hello from Redis") -> str:
    """The shell command that publishes ``message`` to the demo page through the Redis ``config`` uses.

    The password, if any, is left out (``***``): the page may be seen by others.
    """
    arguments = f"{channel_key(Audience.BROADCAST, _DEMO_FACILITY, prefix=config.prefix)} {shlex.quote(message)}"
    publish = f"publish {arguments}"
    address = config.redis_address
    if config.redis_sentinels or config.redis_cluster_nodes:
        return f"PUBLISH {arguments}  # on the Redis at {address}"
    if address.startswith("unix://"):
        return f"redis-cli -s {shlex.quote(urlsplit(address).path)} {publish}"
    return f"redis-cli -u {shlex.quote(address)} {publish}"


class WebSocketApplication(tornado.web.Application):
    """A Tornado application serving ``config.websocket_url`` from a started :class:`Broker`.

    ``handlers`` are appended after the websocket route (and ``/health``), so a catch-all route
    such as Django's WSGI container can come last.
    """

    def __init__(
        self,
        broker: Broker,
        handlers: Sequence[Any] = (),
        *,
        process_request: ProcessRequest | None = None,
        allowed_channels: AllowedChannels | None = None,
        subscriber_class: type[RedisSubscriber] = RedisSubscriber,
        websocket_handler: type[RedisWebSocketHandler] = RedisWebSocketHandler,
        executor: Executor | None = None,
        health_url: str | None = "/health",
        demo: bool = False,
        **settings: Any,
    ) -> None:
        self.broker = broker
        config = broker.config
        self.sockets: set[RedisWebSocketHandler] = set()
        # Commands on the control channel close the matching sockets of this set.
        broker.revocations.watch(self.sockets)
        # Set by close_sockets(): a handshake finishing afterwards is closed at once.
        self.closing = False
        self.frame_writer = FrameWriter()
        options = {
            "broker": broker,
            "process_request": process_request,
            "allowed_channels": allowed_channels,
            "subscriber_class": subscriber_class,
            "sockets": self.sockets,
            "executor": executor,
            "frame_writer": self.frame_writer,
        }
        routes: list[Any] = [(config.websocket_url + "(.*)", websocket_handler, options)]
        if health_url:
            routes.append((health_url, HealthHandler))
        if demo:
            routes.append(("/", DemoHandler, {"config": config}))
        routes.extend(handlers)
        super().__init__(routes, **settings)
        self.heartbeat = (
            Heartbeat(config.heartbeat, config.heartbeat_interval, self.sockets) if config.heartbeat else None
        )
        self.pinger = (
            Pinger(config.ping_interval, config.ping_timeout or config.ping_interval, self.sockets)
            if config.ping_interval
            else None
        )

    def listen(self, port: int, address: str | None = None, **kwargs: Any) -> HTTPServer:
        """Like Tornado's, but on a :class:`GuardedHTTPServer` bound by ``config.handshake_timeout``."""
        listening = {name: kwargs.pop(name) for name in ("family", "backlog", "flags", "reuse_port") if name in kwargs}
        kwargs.setdefault("handshake_timeout", self.broker.config.handshake_timeout)
        server = GuardedHTTPServer(self, **kwargs)
        server.listen(port, address, **listening)
        return server

    def log_request(self, handler: tornado.web.RequestHandler) -> None:
        # A successful upgrade is logged as a "connect" event with more to say; skip its access line.
        if handler.get_status() != 101:
            super().log_request(handler)

    def start(self) -> None:
        """Start the process-wide timers (heartbeat, pings); call once the IOLoop runs."""
        for timer in (self.heartbeat, self.pinger):
            if timer is not None:
                timer.start()

    def stop(self) -> None:
        for timer in (self.heartbeat, self.pinger):
            if timer is not None:
                timer.stop()

    def close_sockets(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> int:
        """Close every open websocket (1001 by default, so clients reconnect elsewhere).

        Handshakes still under way are closed the same way as soon as they complete.
        """
        self.closing = True
        sockets = tuple(self.sockets)
        for socket in sockets:
            socket.close(code, reason)
        return len(sockets)


async def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: bool = False,
    client_publish: bool = False,
    xheaders: bool = False,
    drain_timeout: float = 10.0,
    ready: asyncio.Event | None = None,
) -> None:
    """Run the websocket-only server until SIGTERM or SIGINT, then drain and return.

    Clients may publish (``publish-*`` parameters) only with ``client_publish``: this server does not
    know who connects, and anybody could otherwise write into channels a Django app shares.

    Raises:
        BrokerUnavailable: Redis cannot be reached at start.
    """
    async with Broker(config) as broker:
        app = WebSocketApplication(broker, demo=demo, allowed_channels=None if client_publish else subscriptions_only)
        # X-Forwarded-For / X-Real-Ip are trusted only behind a proxy that sets them (--xheaders).
        # Nothing served here takes a request body, so a body gets no more time than the headers.
        server = GuardedHTTPServer(
            app,
            xheaders=xheaders,
            handshake_timeout=config.handshake_timeout,
            body_timeout=config.handshake_timeout,
        )
        try:
            server.listen(port, host)
        except OSError as exc:
            raise CannotListen(f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}") from exc
        app.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        logger.info("serving websockets on %s:%d%s", host or "*", port, config.websocket_url)
        if ready is not None:
            ready.set()
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await drain(server, app, grace_period=drain_timeout)


async def drain(server: HTTPServer, app: WebSocketApplication, *, grace_period: float) -> None:
    """Stop accepting, close websockets with 1001, and wait (bounded) for connections to end."""
    server.stop()
    app.stop()
    closed = app.close_sockets()
    logger.info("shutting down: closed %d websockets", closed)
    try:
        await asyncio.wait_for(server.close_all_connections(), grace_period)
    except TimeoutError:
        logger.warning("connections still open after %.0fs; exiting anyway", grace_period)

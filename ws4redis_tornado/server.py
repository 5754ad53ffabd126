"""The Tornado application serving websockets, and the websocket-only server built on it.

:class:`WebSocketApplication` is what every server here serves (``django_bridge`` extends it);
:func:`run` and :func:`serve` are ``python -m ws4redis_tornado``. The processes, signals and
drain around an application are :class:`ws4redis_tornado.lifecycle.Lifecycle`'s.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import shlex
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from tornado.httpserver import HTTPServer

from .broker import Broker
from .channels import Audience, channel_key
from .config import Config
from .deflate import FrameCompressor
from .handler import AllowedChannels, AllowedFacility, ProcessRequest, RedisWebSocketHandler
from .heartbeat import Heartbeat
from .keepalive import Pinger
from .lifecycle import DEFAULT_GRACE_PERIOD, Lifecycle
from .listening import GuardedHTTPServer
from .protocol import CLOSE_GOING_AWAY
from .redis_commands import publish_verb
from .status import StatusReporter
from .subscriber import RedisSubscriber
from .supervisor import bind_sockets, describe
from .writes import FrameWriter

__all__ = [
    "CLOSE_GOING_AWAY",
    "HEALTH_TIMEOUT",
    "HealthHandler",
    "WebSocketApplication",
    "make_app",
    "run",
    "serve",
    "subscriptions_only",
]

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
        return f"{publish_verb(sharded=config.redis_sharded_pubsub)} {arguments}  # on the Redis at {address}"
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
        allowed_facility: AllowedFacility | None = None,
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
        compressor = FrameCompressor(config.compression_min_size) if config.compression else None
        self.frame_writer = FrameWriter(broker.metrics, compressor)
        options = {
            "broker": broker,
            "process_request": process_request,
            "allowed_channels": allowed_channels,
            "allowed_facility": allowed_facility,
            "subscriber_class": subscriber_class,
            "sockets": self.sockets,
            "executor": executor,
            "frame_writer": self.frame_writer,
        }
        routes: list[Any] = [(config.websocket_url + "(.*)", websocket_handler, options)]
        if health_url:
            routes.append((health_url, HealthHandler))
        if config.metrics_url:
            routes.append(metrics_route(self, config.metrics_url))
        if demo:
            routes.append(("/", DemoHandler, {"config": config}))
        routes.extend(handlers)
        super().__init__(routes, **settings)
        self.heartbeat = (
            Heartbeat(config.heartbeat, config.heartbeat_interval, self.sockets) if config.heartbeat else None
        )
        self.status = StatusReporter(self)
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
        """Start the process-wide timers (heartbeat, pings, presence, status); call once the IOLoop runs."""
        for timer in (self.heartbeat, self.pinger):
            if timer is not None:
                timer.start()
        self.broker.presence.start()
        self.status.start()

    def stop(self) -> None:
        for timer in (self.heartbeat, self.pinger):
            if timer is not None:
                timer.stop()
        self.broker.presence.stop()
        self.status.stop()

    def close(self) -> None:
        """Release what the application owns once a drain has completed; nothing here (subclasses may)."""

    def close_sockets(self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down") -> int:
        """Close every open websocket (1001 by default, so clients reconnect elsewhere).

        Handshakes still under way are closed the same way as soon as they complete.
        """
        self.closing = True
        sockets = tuple(self.sockets)
        for socket in sockets:
            socket.close(code, reason)
        return len(sockets)


def metrics_route(app: WebSocketApplication, path: str) -> tuple[str, type, dict[str, Any]]:
    """The route serving ``app``'s Prometheus metrics at ``path`` (needs prometheus_client)."""
    from .prometheus import MetricsHandler, registry_of

    return (path, MetricsHandler, {"registry": registry_of(app)})


def make_app(broker: Broker, *, demo: bool = False, client_publish: bool = False) -> WebSocketApplication:
    """Build the websocket-only server's application (``python -m ws4redis_tornado``) from a started broker.

    Clients may publish (``publish-*`` parameters) only with ``client_publish``: this server does not
    know who connects, and anybody could otherwise write into channels a Django app shares.
    """
    return WebSocketApplication(broker, demo=demo, allowed_channels=None if client_publish else subscriptions_only)


def run(
    config: Config,
    *,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    processes: int = 1,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    demo: bool = False,
    client_publish: bool = False,
    xheaders: bool = False,
) -> int:
    """Run the websocket-only server in ``processes`` processes until SIGTERM or SIGINT; return the exit code.

    See :meth:`ws4redis_tornado.lifecycle.Lifecycle.run` for the processes, the drain and what it raises.
    """
    lifecycle = _lifecycle(
        config, grace_period=grace_period, demo=demo, client_publish=client_publish, xheaders=xheaders
    )
    return lifecycle.run(host=host, port=port, processes=processes, description=f"websockets at {config.websocket_url}")


async def serve(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    demo: bool = False,
    client_publish: bool = False,
    xheaders: bool = False,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    drain_timeout: float | None = None,
    ready: asyncio.Event | None = None,
) -> bool:
    """Run the websocket-only server in this process until SIGTERM or SIGINT, then drain; return whether it completed.

    ``host`` ``''`` means every interface. ``drain_timeout`` is the former name of ``grace_period``.

    Raises:
        CannotListen: the address cannot be bound.
        BrokerUnavailable: Redis cannot be reached at start.
    """
    if drain_timeout is not None:
        # Deprecated on 2026-11-30, when the drain moved to ws4redis_tornado.lifecycle.
        warnings.warn("serve(drain_timeout=...) is now serve(grace_period=...)", DeprecationWarning, stacklevel=2)
        grace_period = drain_timeout
    lifecycle = _lifecycle(
        config, grace_period=grace_period, demo=demo, client_publish=client_publish, xheaders=xheaders
    )
    sockets = bind_sockets(host or None, port)
    logger.info("serving websockets on http://%s%s", describe(sockets), config.websocket_url)
    try:
        return await lifecycle.serve(sockets, on_ready=None if ready is None else ready.set)
    finally:
        for sock in sockets:
            sock.close()


def _lifecycle(config: Config, *, grace_period: float, demo: bool, client_publish: bool, xheaders: bool) -> Lifecycle:
    return Lifecycle(
        config,
        partial(make_app, demo=demo, client_publish=client_publish),
        grace_period=grace_period,
        xheaders=xheaders,
        # Nothing served here takes a request body, so a body gets no more time than the headers.
        body_timeout=config.handshake_timeout,
    )

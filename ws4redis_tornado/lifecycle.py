"""A server's life, from the Redis check to the drain: the one lifecycle every server here shares.

:meth:`Lifecycle.run` checks Redis and binds the address before anything forks, then serves in
one or more processes (:mod:`~ws4redis_tornado.supervisor`). Each process runs
:meth:`Lifecycle.serve`: it starts its broker, builds the application, serves until SIGTERM or
SIGINT, drains (:mod:`~ws4redis_tornado.draining`) and closes. What differs between ``python -m
ws4redis_tornado``, ``manage.py runtornado`` and ``manage.py runserver`` is the application,
which they pass as a function of the started broker, and :func:`add_arguments` gives the first
two the same options for the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import tornado.web
from tornado.httpserver import HTTPServer

from .broker import Broker
from .config import Config
from .draining import DrainingHTTPServer, drain
from .exceptions import BrokerUnavailable, CannotListen, ConfigurationError
from .supervisor import STOP_SIGNALS, bind_sockets, describe, exit_now, process_index, run_processes

if TYPE_CHECKING:
    from .server import WebSocketApplication

__all__ = ["DEFAULT_GRACE_PERIOD", "AppFactory", "Lifecycle", "add_arguments", "check_redis", "stop_signals"]

logger = logging.getLogger(__name__)

DEFAULT_GRACE_PERIOD = 10.0
"""Seconds a drain waits for requests and closing handshakes before the process exits anyway."""

AppFactory = Callable[[Broker], "WebSocketApplication"]
"""Builds the application a process serves from its started broker; called once per process."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options :meth:`Lifecycle.run` takes: --host, --port, --processes, --grace-period,
    --xheaders, and --metrics-port (see :func:`with_metrics_port`)."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; '' for every interface, 0.0.0.0 for every IPv4 one (default: %(default)s)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--processes",
        type=processes_argument,
        default=1,
        metavar="N",
        help="processes sharing the port; 'auto' (or 0) starts one per CPU this process may use (default: %(default)s)",
    )
    parser.add_argument(
        "--grace-period",
        type=float,
        default=DEFAULT_GRACE_PERIOD,
        metavar="SECONDS",
        help="how long SIGTERM waits for requests and websocket closes (default: %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on this port (process i of N on PORT+i), not on the websocket port",
    )
    parser.add_argument(
        "--xheaders",
        action="store_true",
        help="trust X-Real-Ip/X-Forwarded-For/X-Scheme; only behind a proxy that sets them",
    )


class Lifecycle:
    """Serves the application ``build_app`` builds, with ``config``'s broker, until SIGTERM or SIGINT.

    ``grace_period`` bounds the drain; ``xheaders`` trusts X-Forwarded-For and X-Real-Ip (only
    behind a proxy that sets them); ``body_timeout`` bounds the time a request body may take.
    """

    def __init__(
        self,
        config: Config,
        build_app: AppFactory,
        *,
        grace_period: float = DEFAULT_GRACE_PERIOD,
        xheaders: bool = False,
        body_timeout: float | None = None,
    ) -> None:
        if grace_period < 0:
            raise ConfigurationError(f"--grace-period has value {grace_period}; expected >= 0")
        self.config = config
        self.build_app = build_app
        self.grace_period = grace_period
        self.xheaders = xheaders
        self.body_timeout = body_timeout

    def run(
        self, *, host: str | None = "127.0.0.1", port: int = 8000, processes: int = 1, description: str = "websockets"
    ) -> int:
        """Serve on ``host`` (None: every interface) and ``port`` in ``processes`` processes; return the exit code.

        ``processes`` 0 starts one per CPU. Redis and the address are checked here, before
        anything forks; ``description`` names what is served in the log line that follows.

        Raises:
            ConfigurationError: ``processes`` is negative.
            BrokerUnavailable: Redis cannot be reached.
            CannotListen: the address cannot be bound.
        """
        count = process_count(processes)
        check_redis(self.config)
        sockets = bind_sockets(host, port)
        logger.info("serving %s on http://%s with %d process(es)", description, describe(sockets), count)
        return run_processes(count, sockets, self.run_process, host=host)

    def run_process(self, sockets: Sequence[socket.socket]) -> int:
        """Serve on ``sockets`` in this process until SIGTERM or SIGINT; return its exit code.

        If a request is still running in a thread when the grace period ends, the process ends at
        once (with 0): the interpreter would otherwise wait for that thread at exit.
        """
        try:
            finished = asyncio.run(self.serve(sockets))
        except (BrokerUnavailable, CannotListen) as exc:
            logger.error("%s", exc)
            return 1
        if not finished and _threads_left():
            exit_now(0)
        return 0

    async def serve(
        self,
        sockets: Sequence[socket.socket],
        *,
        on_ready: Callable[[], None] | None = None,
        stop: asyncio.Event | None = None,
    ) -> bool:
        """Serve on ``sockets`` until SIGTERM, SIGINT or ``stop`` is set, then drain; return whether it completed.

        ``on_ready`` is called once the application serves. After a completed drain the
        application's ``close()`` is called; after an incomplete one it is not, since a request is
        still running: end the process. Signals are only handled in the main thread; elsewhere
        (under Django's autoreloader) this runs until ``stop`` is set or the process ends.

        Raises:
            BrokerUnavailable: Redis cannot be reached at start.
        """
        stop = stop or asyncio.Event()
        async with Broker(self.config) as broker:
            app = self.build_app(broker)
            server = DrainingHTTPServer(
                app,
                xheaders=self.xheaders,
                handshake_timeout=self.config.handshake_timeout,
                body_timeout=self.body_timeout,
            )
            server.add_sockets(sockets)
            metrics_server = serve_metrics(app, sockets) if self.config.metrics_port else None
            app.start()
            try:
                with stop_signals(stop.set):
                    if on_ready is not None:
                        on_ready()
                    await stop.wait()
            finally:
                if metrics_server is not None:
                    metrics_server.stop()
            finished = await drain(server, app, grace_period=self.grace_period)
            if finished:
                app.close()
            return finished


def serve_metrics(app: Any, sockets: Sequence[socket.socket]) -> HTTPServer:
    """Serve ``app``'s metrics on ``metrics_port`` plus this process's index, on the websocket host.

    Raises:
        CannotListen: the port cannot be bound.
    """
    from .prometheus import MetricsHandler, registry_of

    config = app.broker.config
    port = config.metrics_port + process_index()
    host = sockets[0].getsockname()[0] if sockets else "127.0.0.1"
    route = (config.metrics_url or "/metrics", MetricsHandler, {"registry": registry_of(app)})
    server = HTTPServer(tornado.web.Application([route]))
    try:
        server.listen(port, host)
    except OSError as exc:
        raise CannotListen(f"cannot serve the metrics on {host}:{port}: {exc.strerror}") from exc
    logger.info("serving metrics on http://%s:%d%s", host, port, route[0])
    return server


def with_metrics_port(config: Config, port: int | None) -> Config:
    """``config`` with ``--metrics-port``, when it was given; it overrides the setting."""
    return config if port is None else dataclasses.replace(config, metrics_port=port)


def processes_argument(value: str) -> int:
    """Read ``--processes``: a number, or ``auto`` for one per CPU (as 0)."""
    if value.strip().lower() == "auto":
        return 0
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a number of processes nor 'auto'") from None


def process_count(requested: int) -> int:
    """The number of processes to start for ``--processes requested`` (0: one per CPU).

    The CPUs are those this process may run on (its affinity, which a container or ``taskset``
    narrows), not every CPU of the machine.
    """
    if requested < 0:
        raise ConfigurationError(f"--processes has value {requested}; expected 0 or more")
    return requested or usable_cpus()


def usable_cpus() -> int:
    """How many CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def check_redis(config: Config) -> None:
    """Connect to the Redis ``config`` names and disconnect; raise BrokerUnavailable naming it if down."""

    async def connect() -> None:
        async with Broker(config):
            pass

    asyncio.run(connect())


def _threads_left() -> bool:
    """Whether a thread the interpreter waits for at exit is still alive (a thread pool's, say)."""
    main = threading.main_thread()
    return any(thread is not main and not thread.daemon and thread.is_alive() for thread in threading.enumerate())


@contextlib.contextmanager
def stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on SIGTERM and SIGINT while inside, if this is the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)

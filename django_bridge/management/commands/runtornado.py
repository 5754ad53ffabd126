"""``manage.py runtornado``: the production server for Django and its websockets.

One Tornado IOLoop per process serves ``WEBSOCKET_URL`` and, through Django's WSGI handler on a
thread pool, every other URL. With ``--processes N`` the parent checks Redis and the address, then
forks N children; each child builds its own broker, application and IOLoop after the fork, because
none of them survives one. The parent only supervises: it forwards SIGTERM and SIGINT to the
children and exits once they have. A child that dies on its own is not restarted: the parent stops
the others and exits with 1, and the process manager (systemd, Kubernetes ...) starts it again.

On Linux each child listens on a socket of its own with SO_REUSEPORT, so the kernel spreads new
connections evenly over the processes; websockets live long, and one shared socket lets whichever
process wakes first take a whole burst of them. Elsewhere (SO_REUSEPORT does not balance there)
the children share the sockets the parent bound. Either way SO_REUSEPORT also lets a new server
start on the port before the old one is sent SIGTERM, for a restart without refused connections.

SIGTERM drains a process: it stops accepting, closes every websocket with 1001 (Going Away) so
clients reconnect to another server, lets in-flight Django requests finish, and exits within
``--grace-period`` seconds whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, NoReturn

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from tornado import httputil
from tornado.netutil import bind_sockets

from django_bridge.server import RequestLog, build_broker, make_app
from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.listening import GuardedHTTPServer
from ws4redis_tornado.server import CLOSE_GOING_AWAY, WebSocketApplication

__all__ = ["Command", "DrainingHTTPServer", "Supervisor", "drain", "exit_now", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_GRACE_PERIOD = 10.0
BALANCING_REUSE_PORT = sys.platform.startswith("linux")
"""Whether SO_REUSEPORT spreads connections over the sockets sharing a port (Linux does)."""
_POLL_INTERVAL = 0.02
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Command(BaseCommand):
    help = (
        "Serve Django and its websockets from Tornado, in one or more processes sharing a port. "
        "SIGTERM drains gracefully: websockets are closed with 1001 and in-flight requests finish."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to listen on; '' for every interface, 0.0.0.0 for every IPv4 one (default: %(default)s)",
        )
        parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            metavar="N",
            help="processes sharing the port; 0 starts one per CPU (default: %(default)s)",
        )
        parser.add_argument(
            "--ws-only",
            action="store_true",
            help="serve only WEBSOCKET_URL and WS4REDIS_HEALTH_URL (no views), for a split deployment",
        )
        parser.add_argument(
            "--grace-period",
            type=float,
            default=DEFAULT_GRACE_PERIOD,
            metavar="SECONDS",
            help="how long SIGTERM waits for requests and websocket closes (default: %(default)s)",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            metavar="N",
            help="threads per process running Django code (default: min(32, CPUs + 4), as ThreadPoolExecutor)",
        )
        parser.add_argument(
            "--xheaders",
            action="store_true",
            help="trust X-Real-Ip/X-Forwarded-For/X-Scheme from a proxy in front of this server",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        _configure_logging(options["verbosity"])
        processes = options["processes"] or os.cpu_count() or 1
        if processes < 0:
            raise CommandError(f"--processes has value {processes}; expected 0 or more")
        if options["grace_period"] < 0:
            raise CommandError(f"--grace-period has value {options['grace_period']}; expected >= 0")
        if options["threads"] is not None and options["threads"] < 1:
            raise CommandError(f"--threads has value {options['threads']}; expected 1 or more")
        check_redis()
        host = options["host"] or None
        # Binding here checks the address (and picks the port if it is 0) before anything forks.
        sockets = _listen(host, options["port"])
        port = sockets[0].getsockname()[1]
        # Nothing opened here may be shared with the children: close Django's connections first.
        connections.close_all()
        what = "websockets only" if options["ws_only"] else "Django and websockets"
        logger.info("serving %s on http://%s with %d process(es)", what, _describe(sockets), processes)
        own_sockets = processes > 1 and BALANCING_REUSE_PORT
        if own_sockets:
            for sock in sockets:
                sock.close()

        def run() -> int:
            try:
                listening = _listen(host, port) if own_sockets else sockets
            except CommandError as exc:
                logger.error("%s", exc)
                return 1
            return run_server(
                listening,
                ws_only=options["ws_only"],
                grace_period=options["grace_period"],
                threads=options["threads"],
                xheaders=options["xheaders"],
            )

        code = run() if processes == 1 else Supervisor(processes, run).run()
        if code:
            sys.exit(code)


def check_redis() -> None:
    """Raise CommandError, in one line naming the address, if the settings' Redis is wrong or down."""

    async def connect() -> None:
        broker = build_broker()
        try:
            await broker.start()
        finally:
            await broker.aclose()

    try:
        asyncio.run(connect())
    except (BrokerUnavailable, ImproperlyConfigured) as exc:
        raise CommandError(str(exc)) from None


def _listen(host: str | None, port: int) -> list[socket.socket]:
    try:
        return bind_sockets(port, host, reuse_port=hasattr(socket, "SO_REUSEPORT"))
    except OSError as exc:
        raise CommandError(f"cannot listen on {host or '*'}:{port}: {exc.strerror or exc}") from None


def _describe(sockets: Sequence[socket.socket]) -> str:
    host, port = sockets[0].getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _configure_logging(verbosity: int) -> None:
    """Show this server's log lines unless the project configured the root logger itself."""
    if logging.getLogger().handlers:
        return
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")


# -- one serving process ---------------------------------------------------------------------------


def run_server(
    sockets: Sequence[socket.socket],
    *,
    ws_only: bool,
    grace_period: float,
    threads: int | None = None,
    xheaders: bool = False,
) -> int:
    """Serve on ``sockets`` until SIGTERM or SIGINT; return the process's exit code."""
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="django")
    try:
        finished = asyncio.run(
            serve(sockets, ws_only=ws_only, grace_period=grace_period, executor=executor, xheaders=xheaders)
        )
    except BrokerUnavailable as exc:
        logger.error("%s", exc)
        return 1
    executor.shutdown(wait=finished, cancel_futures=True)
    if not finished:
        # A view is still running past the grace period: do not wait for its thread at exit.
        exit_now(0)
    return 0


def exit_now(code: int) -> NoReturn:
    """Flush the logs and the console, then end the process without waiting for any thread."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def serve(
    sockets: Sequence[socket.socket],
    *,
    ws_only: bool = False,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    executor: Executor | None = None,
    xheaders: bool = False,
    on_ready: Callable[[], None] | None = None,
    request_log: RequestLog | None = None,
    serve_static: bool | None = None,
) -> bool:
    """Serve on ``sockets`` until SIGTERM or SIGINT, then drain; return whether the drain completed.

    Signals are only handled in the main thread; elsewhere (under Django's autoreloader) the
    coroutine runs until the process ends.

    Raises:
        BrokerUnavailable: Redis cannot be reached at start.
    """
    broker = build_broker()
    await broker.start()
    try:
        app = make_app(
            broker=broker, executor=executor, ws_only=ws_only, request_log=request_log, serve_static=serve_static
        )
        server = DrainingHTTPServer(app, xheaders=xheaders, handshake_timeout=broker.config.handshake_timeout)
        server.add_sockets(sockets)
        app.start()
        stop = asyncio.Event()
        with _stop_signals(stop.set):
            if on_ready is not None:
                on_ready()
            await stop.wait()
        finished = await drain(server, app, grace_period=grace_period)
        app.close()
        return finished
    finally:
        await broker.aclose()


@contextlib.contextmanager
def _stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on SIGTERM and SIGINT while inside, if this is the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, callback)
    try:
        yield
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


# -- draining --------------------------------------------------------------------------------------


class DrainingHTTPServer(GuardedHTTPServer):
    """An HTTPServer that knows which connections are in the middle of a request.

    Tornado's ``close_all_connections()`` closes every connection at once, in-flight responses
    included. :meth:`start_draining` closes only the idle keep-alive connections, and each busy one
    as soon as its response has been written.
    """

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        super().initialize(*args, **kwargs)
        self._open: set[Any] = set()
        self._busy: set[Any] = set()
        self._draining = False

    @property
    def open_connections(self) -> int:
        return len(self._open)

    @property
    def busy_connections(self) -> int:
        return len(self._busy)

    def start_draining(self) -> None:
        """Stop accepting, close idle connections, and close the others once they are idle."""
        self.stop()
        self._draining = True
        for conn in self._open - self._busy:
            conn.stream.close()

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
    """Stop accepting, close websockets with 1001, let requests finish; False if time ran out."""
    server.start_draining()
    app.stop()
    closing = set(app.sockets)
    app.close_sockets()
    logger.info(
        "draining: closed %d websockets, waiting up to %.1fs for %d requests",
        len(closing),
        grace_period,
        server.busy_connections,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace_period
    # Neither the websockets' closing handshakes nor the responses signal their end; poll.
    while (server.open_connections or app.sockets) and loop.time() < deadline:
        # A handshake that was under way when the drain began ends in a socket to close too.
        for late in app.sockets - closing:
            closing.add(late)
            late.close(CLOSE_GOING_AWAY, "server shutting down")
        await asyncio.sleep(_POLL_INTERVAL)
    busy = server.busy_connections
    if busy:
        logger.warning("%d requests still running after %.1fs; closing their connections", busy, grace_period)
    await server.close_all_connections()
    return not busy


# -- several processes -----------------------------------------------------------------------------


class Supervisor:
    """Forks ``count`` children running ``target`` and waits for them.

    SIGTERM or SIGINT is forwarded to every child. A child that exits while nothing asked it to
    is not restarted: the others are stopped too and the parent exits non-zero, so the process
    manager (systemd, Kubernetes, supervisord) restarts the whole server.
    """

    def __init__(self, count: int, target: Callable[[], int]) -> None:
        self.count = count
        self.target = target
        self.children: dict[int, int] = {}
        self.stopping = False
        self.failed = False
        self._pid = os.getpid()

    def run(self) -> int:
        """Fork the children, wait for all of them, and return the parent's exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _STOP_SIGNALS}
        try:
            for index in range(self.count):
                self._fork(index)
            while self.children:
                self._reap()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        logger.info("all processes exited")
        return 1 if self.failed else 0

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:
            self._run_child()
        self.children[pid] = index
        logger.debug("started process %d (pid %d)", index, pid)

    def _run_child(self) -> None:
        code = 1
        try:
            for signum in _STOP_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            code = self.target()
        except BaseException:
            logger.exception("process %d crashed", os.getpid())
        finally:
            exit_now(code)

    def _reap(self) -> None:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            self.children.clear()
            return
        index = self.children.pop(pid, None)
        if index is None:
            return
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            self.failed = True
        if not self.stopping:
            logger.error("process %d (pid %d) exited with code %d; stopping the others", index, pid, code)
            self.failed = True
            self._stop_children()
        elif code != 0:
            logger.warning("process %d (pid %d) exited with code %d", index, pid, code)

    def _on_signal(self, signum: int, frame: object) -> None:
        if os.getpid() != self._pid:
            # A child between fork and resetting its handlers: act like the default handler.
            os._exit(128 + signum)
        logger.info("received %s; stopping %d process(es)", signal.Signals(signum).name, len(self.children))
        self._stop_children()

    def _stop_children(self) -> None:
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

"""One Tornado application for a Django project: websockets on the IOLoop, Django in a thread pool.

``WEBSOCKET_URL`` goes to :class:`~django_bridge.handlers.DjangoWebSocketHandler`, the health
check to ``WS4REDIS_HEALTH_URL``, and every other path to Django's WSGI application through
``tornado.wsgi.WSGIContainer`` with an executor, so a slow view occupies a thread and never the
IOLoop. With ``DEBUG`` on, static files are served as ``runserver`` serves them; with ``DEBUG`` off
they are not served at all (Django's ``runserver`` does the same): serve ``collectstatic``'s output
with WhiteNoise or a web server.

Requests are logged on ``tornado.access``, or through a ``request_log`` function, such as
:func:`log_like_runserver`, which ``manage.py runserver`` passes.

The container strips the blanks around response header values, because Django writes each
``Set-Cookie`` value with a leading space and Tornado (6.6 at least) refuses it; when the container
fails for any other reason it answers 500, where Tornado's own would leave the request unanswered.
It also reads and closes each response in the worker thread that ran the view, so that Django
closes that thread's database connections at the end of the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from tornado.concurrent import Future
from tornado.httputil import HTTPConnection, HTTPHeaders, HTTPServerRequest, ResponseStartLine
from tornado.web import FallbackHandler, RequestHandler

from ws4redis_tornado.broker import Broker
from ws4redis_tornado.compat.tornado import LoggedWSGIContainer, response_header
from ws4redis_tornado.config import Config
from ws4redis_tornado.server import WebSocketApplication

from . import conf, sessions
from .checks import resolves
from .handlers import DjangoWebSocketHandler

__all__ = ["DjangoApplication", "RequestLog", "build_broker", "log_like_runserver", "make_app"]

logger = logging.getLogger(__name__)
server_logger = logging.getLogger("django.server")

RequestLog = Callable[[HTTPServerRequest, int, "int | None"], None]
"""Called once per answered request with its status and body size in bytes (None if unknown)."""


class DjangoApplication(WebSocketApplication):
    """A :class:`WebSocketApplication` whose last route is the Django project (unless ``ws_only``).

    Attributes:
        executor: the thread pool Django code runs in: views, and the session lookups and hooks
            of websocket handshakes.
        request_log: logs every request, websocket handshakes included, instead of Tornado's
            access log (which leaves out successful handshakes: the connect event says more).

    ``serve_static`` serves the static files as Django's ``runserver`` does; None means "when
    ``DEBUG`` is on" (``runserver --insecure`` and ``--nostatic`` decide otherwise). Without an
    ``executor``, the application creates one of ``threads`` threads (by default
    ``ThreadPoolExecutor``'s number) and :meth:`close` shuts it down.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        executor: Executor | None = None,
        threads: int | None = None,
        ws_only: bool = False,
        request_log: RequestLog | None = None,
        serve_static: bool | None = None,
        **settings: Any,
    ) -> None:
        self._owns_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(max_workers=threads, thread_name_prefix="django")
        self.request_log = request_log
        routes = []
        if not ws_only:
            application = _wsgi_application(serve_static)
            django = _DjangoContainer(application, executor=self.executor, request_log=request_log)
            routes.append((r".*", FallbackHandler, {"fallback": django}))
        super().__init__(
            broker,
            routes,
            process_request=sessions.process_request,
            allowed_channels=sessions.allowed_channels,
            allowed_facility=sessions.allowed_facility,
            subscriber_class=conf.get_subscriber_class(),
            websocket_handler=DjangoWebSocketHandler,
            executor=self.executor,
            health_url=_health_url(),
            **settings,
        )

    def log_request(self, handler: RequestHandler) -> None:
        if self.request_log is None:
            super().log_request(handler)
        else:
            self.request_log(handler.request, handler.get_status(), _body_size(handler))

    def close(self) -> None:
        """Shut down the thread pool if the application created it; call after draining."""
        if self._owns_executor:
            self.executor.shutdown(wait=True)


def make_app(*, broker: Broker, **options: Any) -> DjangoApplication:
    """Build the application serving the project's websockets and views from a started broker.

    ``options`` are :class:`DjangoApplication`'s: ``executor`` (or ``threads``) runs Django code,
    ``ws_only`` leaves the views to another server (other paths answer 404), ``request_log`` and
    ``serve_static``.
    """
    return DjangoApplication(broker, **options)


def log_like_runserver(request: HTTPServerRequest, status: int, size: int | None) -> None:
    """Log a request on ``django.server`` as Django's development server does.

    The same message (``"GET /path HTTP/1.1" 200 17``), arguments, level by status and ``extra``
    (``status_code``, ``server_time``), so Django's default logging prints it as runserver would.
    """
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    request_line = f"{request.method} {request.uri} {request.version}"
    extra = {"status_code": status, "server_time": time.strftime("%d/%b/%Y %H:%M:%S")}
    server_logger.log(level, '"%s" %s %s', request_line, str(status), "-" if size is None else str(size), extra=extra)


def _body_size(handler: RequestHandler) -> int | None:
    # The Content-Length that finish() set.
    length = response_header(handler, "Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def build_broker(config: Config | None = None) -> Broker:
    """Return a broker (not started yet) for ``config``, by default the one the settings describe."""
    return Broker(config if config is not None else conf.get_config())


def _wsgi_application(serve_static: bool | None = None) -> Any:
    """Django's WSGI application as runserver builds it: WSGI_APPLICATION, static files in DEBUG."""
    from django.apps import apps
    from django.conf import settings
    from django.core.servers.basehttp import get_internal_wsgi_application

    application = get_internal_wsgi_application()
    if serve_static is None:
        serve_static = settings.DEBUG
    if serve_static and apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import StaticFilesHandler

        application = StaticFilesHandler(application)
    return application


# -- the WSGI container ----------------------------------------------------------------------------

_ERROR_BODY = b"500 Internal Server Error\n"

_WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _DjangoContainer(LoggedWSGIContainer):
    """A ``WSGIContainer`` that answers every request: with Django's response, or with a 500.

    Tornado's container runs in a callback of its own, so an exception there (a header value
    Tornado refuses, a streamed body that fails) would otherwise only be logged, and the client
    would wait for an answer until it gave up.
    """

    def __init__(
        self, wsgi_application: _WSGIApp, executor: Executor | None = None, request_log: RequestLog | None = None
    ) -> None:
        super().__init__(_strip_header_values(_closed_in_its_thread(wsgi_application)), executor=executor)
        self.request_log = request_log

    async def handle_request(self, request: HTTPServerRequest) -> None:
        connection = request.connection
        assert connection is not None
        watch = _ResponseWatch(connection)
        request.connection = watch
        try:
            await super().handle_request(request)
        except Exception:
            # Once the response has begun nothing can follow it; Tornado closes the stream on the
            # framing errors that can happen then (a body longer or shorter than Content-Length).
            if watch.started:
                logger.exception(
                    "Django's response to %s %s broke off; connection closed", request.method, request.path
                )
            else:
                logger.exception("cannot send Django's response to %s %s; answering 500", request.method, request.path)
                _answer_500(connection)
                self._log_answer(request, 500, len(_ERROR_BODY))
        finally:
            request.connection = connection

    def log_response(self, status_code: int, request: HTTPServerRequest) -> None:
        # Called once the response is written, while request.connection is the watch.
        watch = request.connection
        self._log_answer(request, status_code, watch.body_size if isinstance(watch, _ResponseWatch) else None)

    def _log_answer(self, request: HTTPServerRequest, status: int, size: int | None) -> None:
        if self.request_log is None:
            super().log_response(status, request)
        else:
            self.request_log(request, status, size)


def _strip_header_values(application: _WSGIApp) -> _WSGIApp:
    """Wrap ``application`` so that its response header values lose their surrounding blanks.

    Blanks around a field value are not part of it (RFC 9110, 5.5), so nothing is lost.
    """

    def stripped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, [(name, value.strip(" \t")) for name, value in headers], exc_info)

        return application(environ, start)

    return stripped


def _closed_in_its_thread(application: _WSGIApp) -> _WSGIApp:
    """Wrap ``application`` so that its body is read, and its response closed, in the calling thread.

    Closing a Django response sends ``request_finished``, which closes the database connections
    of the thread it runs in. Tornado's container closes the response on the IOLoop thread, which
    would leave the worker's connections open for as long as the worker lives. Tornado holds the
    whole body in memory before it writes anyway, so reading it here costs nothing more.
    """

    def read_and_close(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        response = application(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            close = getattr(response, "close", None)
            if close is not None:
                close()

    return read_and_close


class _ResponseWatch(HTTPConnection):
    """The request's connection, noting whether the container began a response on it, and its size."""

    def __init__(self, connection: HTTPConnection) -> None:
        self.connection = connection
        self.started = False
        self.body_size = 0

    def write_headers(self, start_line: Any, headers: HTTPHeaders, chunk: bytes | None = None) -> Future[None]:
        self.started = True
        self.body_size += len(chunk or b"")
        return self.connection.write_headers(start_line, headers, chunk)

    def write(self, chunk: bytes) -> Future[None]:
        self.body_size += len(chunk)
        return self.connection.write(chunk)

    def finish(self) -> None:
        self.connection.finish()


def _answer_500(connection: HTTPConnection) -> None:
    headers = HTTPHeaders({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(_ERROR_BODY))})
    connection.write_headers(ResponseStartLine("HTTP/1.1", 500, "Internal Server Error"), headers, _ERROR_BODY)
    connection.finish()


def _health_url() -> str | None:
    url = conf.get_health_url()
    if url is not None and resolves(url):
        logger.warning("WS4REDIS_HEALTH_URL %s is also one of your URLs: serving your view there", url)
        return None
    return url

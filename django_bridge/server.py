"""One Tornado application for a Django project: websockets on the IOLoop, Django in a thread pool.

``WEBSOCKET_URL`` goes to :class:`~django_bridge.handlers.DjangoWebSocketHandler`, the health
check to ``WS4REDIS_HEALTH_URL``, and every other path to Django's WSGI application through
``tornado.wsgi.WSGIContainer`` with an executor, so a slow view occupies a thread and never the
IOLoop. With ``DEBUG`` on, static files are served as ``runserver`` serves them.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from tornado.web import FallbackHandler
from tornado.wsgi import WSGIContainer

from ws4redis_tornado.broker import Broker
from ws4redis_tornado.config import Config
from ws4redis_tornado.server import WebSocketApplication

from . import conf, sessions
from .checks import resolves
from .handlers import DjangoWebSocketHandler

__all__ = ["DjangoApplication", "build_broker", "make_app"]

logger = logging.getLogger(__name__)


class DjangoApplication(WebSocketApplication):
    """A :class:`WebSocketApplication` whose last route is the Django project (unless ``ws_only``).

    Attributes:
        executor: the thread pool Django code runs in: views, and the session lookups and hooks
            of websocket handshakes.
    """

    def __init__(
        self, broker: Broker, *, executor: Executor | None = None, ws_only: bool = False, **settings: Any
    ) -> None:
        self._owns_executor = executor is None
        self.executor = executor or ThreadPoolExecutor(thread_name_prefix="django")
        routes = []
        if not ws_only:
            django = WSGIContainer(_wsgi_application(), executor=self.executor)
            routes.append((r".*", FallbackHandler, {"fallback": django}))
        super().__init__(
            broker,
            routes,
            process_request=sessions.process_request,
            allowed_channels=sessions.allowed_channels,
            subscriber_class=conf.get_subscriber_class(),
            websocket_handler=DjangoWebSocketHandler,
            executor=self.executor,
            health_url=_health_url(),
            **settings,
        )

    def close(self) -> None:
        """Shut down the thread pool if the application created it; call after draining."""
        if self._owns_executor:
            self.executor.shutdown(wait=True)


def make_app(*, broker: Broker, executor: Executor | None = None, ws_only: bool = False) -> DjangoApplication:
    """Build the application serving the project's websockets and views from a started broker.

    ``executor`` runs Django code (views and handshake lookups); by default the application
    creates a ``ThreadPoolExecutor`` and :meth:`DjangoApplication.close` shuts it down. With
    ``ws_only`` the views are not served (another server serves them): other paths answer 404.
    """
    return DjangoApplication(broker, executor=executor, ws_only=ws_only)


def build_broker(config: Config | None = None) -> Broker:
    """Return a broker (not started yet) for ``config``, by default the one the settings describe."""
    return Broker(config if config is not None else conf.get_config())


def _wsgi_application() -> Any:
    """Django's WSGI application as runserver builds it: WSGI_APPLICATION, static files in DEBUG."""
    from django.apps import apps
    from django.conf import settings
    from django.core.servers.basehttp import get_internal_wsgi_application

    application = get_internal_wsgi_application()
    if settings.DEBUG and apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.handlers import StaticFilesHandler

        application = StaticFilesHandler(application)
    return application


def _health_url() -> str | None:
    url = conf.get_health_url()
    if url is not None and resolves(url):
        logger.warning("WS4REDIS_HEALTH_URL %s is also one of your URLs: serving your view there", url)
        return None
    return url

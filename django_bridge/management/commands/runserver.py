"""``manage.py runserver`` serving Django and its websockets on one port, from one Tornado IOLoop.

Django's options and autoreloader stay as they are; ``--nows4redis`` (or ``--wsgi``) runs Django's
own WSGI development server instead. List ``django_bridge`` before ``django.contrib.staticfiles``
in INSTALLED_APPS so this command replaces staticfiles' one (whose options it keeps).

When ``WS4REDIS_CONNECTION`` is not set and no Redis answers at ``redis://localhost:6379/0``
(or at ``$WS4REDIS_LOCAL_REDIS_URL``), the command starts an embedded redis-server. It is started
by the autoreloader's parent process, before the first child, so every reload keeps it; the
children find its URL in an environment variable and it stops when the parent exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import connections
from django.utils import autoreload
from tornado.netutil import bind_sockets

from django_bridge import conf, embedded
from django_bridge.server import log_like_runserver, make_app
from ws4redis_tornado.embedded import RedisServer
from ws4redis_tornado.exceptions import BrokerUnavailable, ConfigurationError
from ws4redis_tornado.lifecycle import Lifecycle
from ws4redis_tornado.supervisor import exit_now

if apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import Command as RunserverCommand
else:
    from django.core.management.commands.runserver import Command as RunserverCommand

__all__ = ["Command"]

GRACE_PERIOD = 2.0
"""Seconds a stopping development server gives requests and websocket closes (without reloader)."""

HIDE_WARNING_VARIABLE = "DJANGO_RUNSERVER_HIDE_WARNING"
PRODUCTION_WARNING = (
    "WARNING: This is a development server. Do not use it in a production setting. "
    "Use 'manage.py runtornado' instead: it serves Django and its websockets in several processes "
    "and drains them on SIGTERM."
)
"""Replaces Django's advice to use "a production WSGI or ASGI server", which would serve no websockets."""


class Command(RunserverCommand):
    help = (
        "Start a development server for Django and its websockets (Tornado and Redis), "
        "or Django's WSGI development server with --nows4redis."
    )
    embedded_redis: RedisServer | None = None

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--nows4redis",
            "--wsgi",
            action="store_false",
            dest="use_ws4redis",
            help="Run Django's plain WSGI development server instead: no websockets, no embedded Redis.",
        )

    def run(self, **options: Any) -> None:
        if not options["use_ws4redis"]:
            super().run(**options)
            return
        self.embedded_redis = None if _redis_configured() else self._choose_redis()
        try:
            super().run(**options)
        finally:
            if self.embedded_redis is not None:
                self.embedded_redis.stop()

    def _choose_redis(self) -> RedisServer | None:
        """Point this process and its reloaded children at a Redis, starting one if there is none.

        Runs in the autoreloader's parent, which chooses, and again in each child, which inherits
        the choice through the environment. Return the server this process started, if any.
        """
        url = embedded.inherited_url()
        server = None
        if url is None:
            url, server = self._local_or_embedded_redis()
            embedded.export_url(url)
        _use_redis(url)
        return server

    def _local_or_embedded_redis(self) -> tuple[str, RedisServer | None]:
        local = embedded.local_redis_url()
        if embedded.answers(local):
            return local, None
        try:
            server = embedded.start()
        except (FileNotFoundError, RuntimeError) as exc:
            raise CommandError(f"WS4REDIS_CONNECTION is not set and nothing answers at {local}; {exc}") from None
        self.stdout.write(
            f"Started an embedded Redis at {server.url} (WS4REDIS_CONNECTION is not set and nothing "
            f"answers at {local}); it stops with this server."
        )
        return server.url, server

    def inner_run(self, *args: Any, **options: Any) -> None:
        if not options["use_ws4redis"]:
            super().inner_run(*args, **options)
            return
        # As in Django's own inner_run: re-raise what the reloader's parent silenced, then check.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            # Every check, as Django's inner_run does (runserver's get_check_kwargs() selects none).
            self.check(display_num_errors=True)
        self.check_migrations()
        for conn in connections.all(initialized_only=True):
            conn.close()
        finished = True
        try:
            finished = asyncio.run(self._serve(options))
        except BrokerUnavailable as exc:
            self._fail(f"{str(exc).rstrip('.')}. {_redis_hint()}")
        except (ImproperlyConfigured, ConfigurationError) as exc:
            self._fail(f"{exc}")
        except OSError as exc:
            self._fail(_bind_error(exc))
        except KeyboardInterrupt:
            pass
        if options.get("shutdown_message"):
            self.stdout.write(options["shutdown_message"])
        if not finished:
            self._exit(0)
        sys.exit(0)

    async def _serve(self, options: dict[str, Any]) -> bool:
        family = socket.AF_INET6 if self.use_ipv6 else socket.AF_UNSPEC
        # Without SO_REUSEPORT, unlike runtornado: a second development server on the port is an error.
        sockets = bind_sockets(int(self.port), self.addr, family=family)
        # --nothreading runs one view at a time, as Django's server does.
        threads = None if options["use_threading"] else 1
        serve_static = _serves_static(options)
        try:
            server = Lifecycle(
                conf.get_config(),
                lambda broker: make_app(
                    broker=broker, threads=threads, request_log=log_like_runserver, serve_static=serve_static
                ),
                grace_period=GRACE_PERIOD,
            )
            return await server.serve(sockets, on_ready=lambda: self._on_ready(sockets[0].getsockname()[1]))
        finally:
            # When the project fails to load, the traceback keeps the sockets alive while the
            # autoreloader waits for a fix: close them, so nothing accepts connections no one serves.
            for sock in sockets:
                sock.close()

    def _on_ready(self, port: int) -> None:
        with _django_warning_hidden() as hidden_by_user:
            self.on_bind(port)
        if not hidden_by_user:
            self.stdout.write(self.style.WARNING(PRODUCTION_WARNING))
        config = conf.get_config()
        host = f"[{self.addr}]" if self._raw_ipv6 else self.addr
        self.stdout.write(f"Websockets at ws://{host}:{port}{config.websocket_url}, Redis at {config.redis_address}")

    def _fail(self, message: str) -> None:
        self.stderr.write(f"Error: {message}")
        self._exit(1)

    def _exit(self, code: int) -> NoReturn:
        # Under the autoreloader this runs in a thread, where SystemExit would only end the thread;
        # os._exit() skips the `finally` of run(), so stop the embedded Redis (if ours) here.
        if self.embedded_redis is not None:
            self.embedded_redis.stop()
        exit_now(code)


@contextlib.contextmanager
def _django_warning_hidden() -> Iterator[bool]:
    """Keep Django's on_bind() (5.2 and later) from printing its production warning.

    Yields whether the user hid it already, in which case no warning is wanted at all.
    """
    previous = os.environ.get(HIDE_WARNING_VARIABLE)
    os.environ[HIDE_WARNING_VARIABLE] = "true"
    try:
        yield previous == "true"
    finally:
        if previous is None:
            del os.environ[HIDE_WARNING_VARIABLE]
        else:
            os.environ[HIDE_WARNING_VARIABLE] = previous


def _serves_static(options: dict[str, Any]) -> bool:
    """Whether Django's staticfiles runserver would serve static files (DEBUG, --insecure, --nostatic)."""
    if "use_static_handler" not in options:  # django.contrib.staticfiles is not installed
        return False
    return options["use_static_handler"] and (settings.DEBUG or options["insecure_serving"])


def _redis_configured() -> bool:
    return getattr(settings, "WS4REDIS_CONNECTION", None) is not None


def _redis_hint() -> str:
    if embedded.inherited_url() is None:
        return "Start it, or remove WS4REDIS_CONNECTION to let runserver start an embedded Redis."
    return "It is gone; restart runserver."


def _use_redis(url: str) -> None:
    """Make the settings, and so the broker and RedisPublisher, use the Redis at ``url``."""
    settings.WS4REDIS_CONNECTION = url
    conf.clear_cache()


def _bind_error(exc: OSError) -> str:
    messages = {
        errno.EACCES: "You don't have permission to access that port.",
        errno.EADDRINUSE: "That port is already in use.",
        errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
    }
    return messages.get(exc.errno or 0, str(exc))

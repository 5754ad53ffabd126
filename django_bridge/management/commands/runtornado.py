"""``manage.py runtornado``: the production server for Django and its websockets.

One Tornado IOLoop per process serves ``WEBSOCKET_URL`` and, through Django's WSGI handler on a
thread pool, every other URL. This command is Django glue over the core's lifecycle
(:mod:`ws4redis_tornado.lifecycle`): it reads the options and the settings, runs Django's
checks and closes Django's database connections before anything forks, and hands the core a
function building :func:`django_bridge.server.make_app` in each process. The processes sharing
the port (:mod:`ws4redis_tornado.supervisor`) and the drain on SIGTERM
(:mod:`ws4redis_tornado.draining`: websockets closed with 1001, in-flight Django requests
finished, exit within ``--grace-period`` seconds) are the core's.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from django_bridge import conf
from django_bridge.server import make_app
from ws4redis_tornado import lifecycle
from ws4redis_tornado.exceptions import BrokerUnavailable, CannotListen, ConfigurationError

__all__ = ["Command"]


class Command(BaseCommand):
    help = (
        "Serve Django and its websockets from Tornado, in one or more processes sharing a port. "
        "SIGTERM drains gracefully: websockets are closed with 1001 and in-flight requests finish."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        lifecycle.add_arguments(parser)
        parser.add_argument(
            "--ws-only",
            action="store_true",
            help="serve only WEBSOCKET_URL and WS4REDIS_HEALTH_URL (no views), for a split deployment",
        )
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            metavar="N",
            help="threads per process running Django code (default: min(32, CPUs + 4), as ThreadPoolExecutor)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        _configure_logging(options["verbosity"])
        ws_only, threads = options["ws_only"], options["threads"]
        if threads is not None and threads < 1:
            raise CommandError(f"--threads has value {threads}; expected 1 or more")
        try:
            server = lifecycle.Lifecycle(
                lifecycle.with_metrics_port(conf.get_config(), options["metrics_port"]),
                lambda broker: make_app(broker=broker, ws_only=ws_only, threads=threads),
                grace_period=options["grace_period"],
                xheaders=options["xheaders"],
            )
            # Nothing opened here may be shared with the processes the core forks.
            connections.close_all()
            code = server.run(
                host=options["host"] or None,
                port=options["port"],
                processes=options["processes"],
                description="websockets only" if ws_only else "Django and websockets",
            )
        except (ImproperlyConfigured, ConfigurationError, BrokerUnavailable, CannotListen) as exc:
            raise CommandError(str(exc)) from None
        if code:
            sys.exit(code)


def _configure_logging(verbosity: int) -> None:
    """Show this server's log lines unless the project configured the root logger itself."""
    if logging.getLogger().handlers:
        return
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")

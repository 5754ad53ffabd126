"""A websocket-only server that knows users: ``?as=<name>`` connects as that user, without it anonymously.

``python -m ws4redis_tornado`` knows no users (every socket is anonymous), so the Node tests of
presence (tests/js/ws4redis-presence.test.mjs, through harness.mjs) start this instead. It takes
a few of the same options and, like ``--demo``, lets clients publish. ``GET /presence/<facility>``
answers who is on the facility's broadcast channel in every process, as
``Publisher.apresence()`` reads it: ``{"users": {"john": 2}, "anonymous": 1}``::

    python tests/js/named_server.py --port 8000 --redis redis://127.0.0.1:6379/0 --presence room

A test server only: anybody may claim any name.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

import tornado.web
from tornado.httputil import HTTPServerRequest

from ws4redis_tornado import Broker, Config, Principal, WebSocketApplication, lifecycle
from ws4redis_tornado.publisher import Publisher


async def as_named(request: HTTPServerRequest) -> Principal:
    """Connect as the user ``?as=`` names; a coroutine function, so it runs on the IOLoop."""
    name = request.query_arguments.get("as", [b""])[0].decode()
    return Principal(user=name or None)


class PresenceHandler(tornado.web.RequestHandler):
    """Who is on a facility's broadcast channel: what a test waits for before it looks at a client."""

    def initialize(self, *, publisher: Publisher) -> None:
        self.publisher = publisher

    async def get(self, facility: str) -> None:
        presence = await self.publisher.apresence(facility, broadcast=True)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"users": presence.users, "anonymous": presence.anonymous}))


def build_app(broker: Broker) -> WebSocketApplication:
    handlers = [(r"/presence/([^/]+)", PresenceHandler, {"publisher": Publisher(broker.config)})]
    return WebSocketApplication(broker, handlers, process_request=as_named)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="named_server.py", description=__doc__.split("\n", 1)[0])
    lifecycle.add_arguments(parser)
    parser.add_argument("--redis", default=Config.redis_url, help="Redis URL (default: %(default)s)")
    parser.add_argument("--presence", action="append", default=[], metavar="FACILITY", help="repeat for more")
    parser.add_argument("--presence-interval", type=float, default=Config.presence_interval, metavar="SECONDS")
    parser.add_argument("--history-size", type=int, default=Config.history_size, metavar="N")
    parser.add_argument("--heartbeat", default=None, help="heartbeat string sent every few seconds")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config(
        redis_url=args.redis,
        presence=tuple(args.presence),
        presence_interval=args.presence_interval,
        history_size=args.history_size,
        heartbeat=args.heartbeat,
    )
    server = lifecycle.Lifecycle(config, build_app, grace_period=args.grace_period)
    return server.run(host=args.host or None, port=args.port, description="websockets for named users")


if __name__ == "__main__":
    sys.exit(main())

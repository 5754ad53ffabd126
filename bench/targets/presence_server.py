"""ws4redis_tornado's websocket server, as ``python -m ws4redis_tornado`` runs it, with named users in rooms.

The command-line server knows no users, and presence costs per distinct user: this script serves
the same application through the same :class:`~ws4redis_tornado.lifecycle.Lifecycle`, with a
``process_request`` hook that takes who connects from the query (``?as=<name>&room=<group>``, a
benchmark's stand-in for a session). A socket with ``subscribe-group`` then listens on the channel
of its room, ``group:<room>:<facility>``: one facility, as many channels as rooms.

Usage: ``python bench/targets/presence_server.py --port P --redis URL [--presence chat]
[--presence-interval 10]``. Pings are off and the publish rate unlimited, so that nothing but
presence differs between a run with ``--presence`` and one without.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tornado.httputil import HTTPServerRequest

from ws4redis_tornado import Config, Principal, WebSocketApplication
from ws4redis_tornado.broker import Broker
from ws4redis_tornado.lifecycle import Lifecycle
from ws4redis_tornado.server import subscriptions_only


async def named_in_room(request: HTTPServerRequest) -> Principal:
    """``?as=<name>&room=<group>``: that user, member of that one group."""
    query = request.query_arguments
    name = query.get("as", [b""])[0].decode()
    room = query.get("room", [b""])[0].decode()
    return Principal(user=name or None, groups=(room,) if room else ())


def build_app(broker: Broker) -> WebSocketApplication:
    return WebSocketApplication(broker, process_request=named_in_room, allowed_channels=subscriptions_only)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--presence", action="append", default=[], metavar="FACILITY")
    parser.add_argument("--presence-interval", type=float, default=Config.presence_interval)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = Config(
        redis_url=args.redis,
        presence=tuple(args.presence),
        presence_interval=args.presence_interval,
        ping_interval=0,
        publish_rate=0,
    )
    return Lifecycle(config, build_app, grace_period=2.0).run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    sys.exit(main())

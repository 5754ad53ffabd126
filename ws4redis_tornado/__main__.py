"""``python -m ws4redis_tornado``: the websocket-only server, for use without Django."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import __version__, lifecycle
from .config import Config, redis_location
from .embedded import RedisServer
from .exceptions import BrokerUnavailable, CannotListen, ConfigurationError
from .logs import JsonFormatter
from .server import run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ws4redis_tornado",
        description="Serve websockets whose messages travel through Redis pub/sub.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    lifecycle.add_arguments(parser)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--redis",
        default=Config.redis_url,
        help="Redis URL, or cluster://host:port,host:port for a Redis Cluster (default: %(default)s)",
    )
    where.add_argument(
        "--embedded-redis",
        action="store_true",
        help="start a private redis-server (from PATH or the 'embedded' extra) for this process",
    )
    parser.add_argument(
        "--sharded-pubsub",
        action="store_true",
        help="in a Redis Cluster (7.0 or later), publish and subscribe by slot: SPUBLISH and SSUBSCRIBE",
    )
    parser.add_argument("--prefix", default="", help="namespace before every channel key")
    parser.add_argument("--expire", type=int, default=Config.expire, help="seconds a message stays persisted")
    parser.add_argument("--heartbeat", default=None, help="heartbeat string sent every few seconds")
    parser.add_argument("--websocket-url", default=Config.websocket_url, help="URL prefix of the endpoint")
    parser.add_argument(
        "--handshake-timeout",
        type=float,
        default=Config.handshake_timeout,
        metavar="SECONDS",
        help="close a connection that has not sent its request headers within this time (default: %(default)s)",
    )
    parser.add_argument(
        "--health-detail",
        action="store_true",
        help="show the numbers of sockets and channels in /health (anybody reaching it can read them)",
    )
    parser.add_argument(
        "--history-size",
        type=int,
        default=Config.history_size,
        metavar="N",
        help="messages kept per channel for clients that reconnect with recover (default: %(default)s, none)",
    )
    parser.add_argument(
        "--history-ttl",
        type=int,
        default=None,
        metavar="SECONDS",
        help="seconds a channel's history lives after its last message (default: --expire)",
    )
    parser.add_argument(
        "--presence",
        action="append",
        default=[],
        metavar="FACILITY",
        help="keep presence (who is connected) on this facility's channels; repeat for more",
    )
    parser.add_argument(
        "--presence-interval",
        type=float,
        default=Config.presence_interval,
        metavar="SECONDS",
        help="seconds between two rewrites of this process's presence in Redis (default: %(default)s)",
    )
    parser.add_argument(
        "--max-subscriptions",
        type=int,
        default=Config.max_subscriptions,
        metavar="N",
        help="channels one socket may subscribe to with the control protocol (default: %(default)s)",
    )
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="send every message uncompressed, also to clients that offer permessage-deflate",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="serve Prometheus metrics at /metrics on the websocket port (needs the metrics extra)",
    )
    parser.add_argument("--demo", action="store_true", help="serve a demo page at / (implies --client-publish)")
    parser.add_argument(
        "--client-publish",
        action="store_true",
        help="let clients publish with publish-* parameters (default: they may only subscribe)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING ...")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one object per line")
    return parser.parse_args(argv)


def configure_logging(level: str, style: str) -> None:
    handler = logging.StreamHandler()
    if style == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level, args.log_format)
    embedded = RedisServer().start() if args.embedded_redis else None
    try:
        config = Config(
            **redis_location(embedded.url if embedded else args.redis),
            redis_sharded_pubsub=args.sharded_pubsub,
            prefix=args.prefix,
            expire=args.expire,
            heartbeat=args.heartbeat,
            websocket_url=args.websocket_url,
            handshake_timeout=args.handshake_timeout,
            health_detail=args.health_detail,
            history_size=args.history_size,
            history_ttl=args.history_ttl,
            presence=tuple(args.presence),
            presence_interval=args.presence_interval,
            max_subscriptions=args.max_subscriptions,
            compression=not args.no_compression,
            metrics_url="/metrics" if args.metrics else None,
            metrics_port=args.metrics_port,
        )
        if embedded:
            print(f"started an embedded redis-server at {embedded.url}", file=sys.stderr)
        return run(
            config,
            host=args.host or None,
            port=args.port,
            processes=args.processes,
            grace_period=args.grace_period,
            demo=args.demo,
            client_publish=args.client_publish or args.demo,
            xheaders=args.xheaders,
        )
    except (ConfigurationError, BrokerUnavailable, CannotListen) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1
    finally:
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())

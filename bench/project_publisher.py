"""Publisher through ws4redis_tornado's own publish path, as an application would publish.

``python -m bench.project_publisher REDIS_URL CHANNEL HISTORY_SIZE``: each stdin line goes out
through :func:`ws4redis_tornado.publisher.publish` with a :class:`~ws4redis_tornado.config.Config`
of that history size and the default expire (3600 s, also the history's TTL). History size 0:
PUBLISH and SET (the persisted copy) in one round trip. Above 0: one EVAL per channel that appends
to the channel's stream, persists, and publishes the message carrying its stream id.
"""

from __future__ import annotations

import sys

from bench import payload, roundtrips
from ws4redis_tornado.config import Config
from ws4redis_tornado.connections import RedisTopology
from ws4redis_tornado.publisher import publish


def main() -> None:
    url, channel, history_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = Config(redis_url=url, history_size=history_size)
    client = RedisTopology(config).sync_command_client()
    channels = [channel]
    roundtrips.serve(
        lambda message: publish(client, channels, message, config=config),
        sys.stdin.buffer,
        sys.stdout.buffer,
        payload.maker_from_env(),
    )


if __name__ == "__main__":
    main()

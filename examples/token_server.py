"""A websocket server without Django: users identified by a token in the query string.

Run it (a Redis on localhost:6379, or change REDIS_URL)::

    python examples/token_server.py

then connect to ``ws://localhost:8001/ws/inbox?token=john-secret&subscribe-user`` and publish with
``redis-cli publish user:john:inbox hello``.
"""

from __future__ import annotations

import asyncio
import logging

from ws4redis_tornado import Broker, Config, Principal, WebSocketApplication
from ws4redis_tornado.exceptions import PermissionDenied

REDIS_URL = "redis://localhost:6379/0"
PORT = 8001
TOKENS = {"john-secret": ("john", ("staff",)), "mary-secret": ("mary", ())}


def process_request(request) -> Principal:
    """Identify the user from ``?token=``; runs in a thread pool, so it may block."""
    token = request.query_arguments.get("token", [b""])[0].decode()
    if token not in TOKENS:
        raise PermissionDenied("unknown token")
    user, groups = TOKENS[token]
    return Principal(user=user, groups=groups, request=request)


def allowed_channels(request, channels: list[str]) -> list[str]:
    """Let nobody broadcast; everything else as asked."""
    return [channel for channel in channels if channel != "publish-broadcast"]


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    async with Broker(Config(redis_url=REDIS_URL)) as broker:
        app = WebSocketApplication(broker, process_request=process_request, allowed_channels=allowed_channels)
        app.listen(PORT)
        app.start()
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

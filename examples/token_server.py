"""A websocket server without Django: users identified by a token in the query string.

Run it with a Redis at REDIS_URL (default redis://localhost:6379/0), on PORT (default 8001)::

    python examples/token_server.py

then connect to ``ws://127.0.0.1:8001/ws/inbox?token=john-secret&subscribe-user`` and publish to
john with ``redis-cli publish user:john:inbox hello``.
"""

import asyncio
import logging
import os

from ws4redis_tornado import Broker, Config, Principal, WebSocketApplication
from ws4redis_tornado.exceptions import PermissionDenied

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
PORT = int(os.environ.get("PORT", "8001"))
TOKENS = {"john-secret": ("john", ("staff",)), "mary-secret": ("mary", ())}  # token: (user, groups)


def process_request(request) -> Principal:
    """Identify the user from ``?token=``; a plain function runs in a thread pool, so it may block."""
    token = request.query_arguments.get("token", [b""])[0].decode()
    if token not in TOKENS:
        raise PermissionDenied("unknown token")  # answered with 403
    user, groups = TOKENS[token]
    return Principal(user=user, groups=groups, request=request)


def allowed_channels(request, channels: list[str]) -> list[str]:
    """Let nobody broadcast, as ws4redis' WS4REDIS_ALLOWED_CHANNELS would; everything else as asked."""
    return [channel for channel in channels if channel != "publish-broadcast"]


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    async with Broker(Config(redis_url=REDIS_URL)) as broker:
        app = WebSocketApplication(broker, process_request=process_request, allowed_channels=allowed_channels)
        app.listen(PORT, "127.0.0.1")  # "" for every interface
        app.start()  # the process's heartbeat and ping timers
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())

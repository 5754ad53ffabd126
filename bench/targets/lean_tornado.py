"""Lean Tornado fan-out server: the floor the benchmark compares against.

What it does per published message is the least a Tornado websocket broadcaster can do:
one Redis pub/sub connection for the whole process, the websocket frame encoded once, and
the same bytes handed to ``IOStream.write`` of every subscribed socket (no per-socket
``write_message``, no per-socket Redis connection). It speaks the same URL and channel
scheme as ws4redis: ``/ws/<facility>?subscribe-broadcast`` <- ``broadcast:<facility>``.

Usage: ``python bench/targets/lean_tornado.py --port P --redis redis://127.0.0.1:R/0``.
"""

from __future__ import annotations

import argparse
import asyncio

import redis.asyncio as aioredis
import tornado.web
import tornado.websocket
from tornado.iostream import StreamClosedError

from bench.targets.wsframe import encode_text_frame


class Hub:
    """Facility -> sockets, fed by a single Redis pub/sub connection."""

    def __init__(self, redis_url: str) -> None:
        self.redis = aioredis.Redis.from_url(redis_url)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.sockets: dict[str, set[Relay]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def join(self, facility: str, socket: Relay) -> None:
        members = self.sockets.setdefault(facility, set())
        members.add(socket)
        if len(members) == 1:
            await self.pubsub.subscribe(f"broadcast:{facility}")
            if self.reader is None:
                self.reader = asyncio.create_task(self.run())

    def leave(self, facility: str, socket: Relay) -> None:
        # Subscriptions are kept until the process exits; the benchmark uses one facility.
        self.sockets.get(facility, set()).discard(socket)

    async def run(self) -> None:
        while True:
            message = await self.pubsub.get_message(timeout=None)
            if message is None or message["type"] != "message":
                continue
            facility = message["channel"].decode().partition(":")[2]
            frame = encode_text_frame(message["data"])
            for socket in tuple(self.sockets.get(facility, ())):
                stream = socket.stream
                if stream is None or stream.closed():
                    continue
                try:  # noqa: SIM105 (cheaper than contextlib.suppress in this hot loop)
                    stream.write(frame)
                except StreamClosedError:
                    pass


class Relay(tornado.websocket.WebSocketHandler):
    """A subscriber socket; it never sends anything itself."""

    hub: Hub
    facility = ""

    def check_origin(self, origin: str) -> bool:
        return True

    async def open(self, facility: str) -> None:
        if "subscribe-broadcast" in self.request.arguments:
            self.facility = facility
            await self.hub.join(facility, self)

    @property
    def stream(self):  # type: ignore[no-untyped-def]
        conn = self.ws_connection
        return conn.stream if conn is not None else None  # type: ignore[attr-defined]

    def on_message(self, message: str | bytes) -> None:
        pass

    def on_close(self) -> None:
        if self.facility:
            self.hub.leave(self.facility, self)


async def serve(host: str, port: int, redis_url: str) -> None:
    Relay.hub = Hub(redis_url)
    app = tornado.web.Application([(r"/ws/([^/]+)", Relay)])
    app.listen(port, address=host, backlog=1024)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.redis))


if __name__ == "__main__":
    main()

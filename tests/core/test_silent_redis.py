"""A Redis that accepts connections and never answers (a proxy whose Redis is gone) holds no
reconnection for good: each attempt gives up after the connect timeout, and the broker is back
as soon as a real Redis answers behind the same address."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as aredis

from ws4redis_tornado import Broker, Config
from ws4redis_tornado.broker import Delivery

from ..utils import MS, wait_until


class Proxy:
    """A TCP proxy to Redis that, while ``silent``, accepts connections and never answers them."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.silent = False
        self.server: asyncio.Server | None = None
        self.forwarded: list[asyncio.StreamWriter] = []
        self.held: list[asyncio.StreamWriter] = []
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Go silent and drop every forwarded connection, as a proxy does when its Redis dies."""
        self.silent = True
        for writer in self.forwarded:
            writer.transport.abort()
        self.forwarded.clear()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in [*self.forwarded, *self.held]:
            writer.transport.abort()
        for task in self.pipes:
            task.cancel()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.silent:
            self.held.append(writer)  # read nothing, answer nothing, close nothing
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
        self.forwarded += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
            sink.transport.abort()

        for task in (pipe(reader, upstream_writer), pipe(upstream_reader, writer)):
            self.pipes.add(asyncio.create_task(task))


class Collector:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []

    def on_broker_message(self, delivery: Delivery) -> None:
        self.payloads.append(delivery.payload)

    def on_broker_lost(self) -> None:
        pass


@pytest.mark.gen_test(timeout=60)
async def test_a_silent_peer_does_not_hold_the_reconnection(redis_url, prefix):
    proxy = Proxy(int(redis_url.rsplit(":", 1)[1].split("/", 1)[0]))
    port = await proxy.start()
    # A client name makes redis-py send CLIENT SETNAME on connecting and wait for its answer.
    config = Config(
        redis_url=f"redis://127.0.0.1:{port}/0",
        prefix=prefix,
        reconnect_max_delay=0.2,
        redis_options={"client_name": f"ws4redis-{prefix}", "socket_connect_timeout": 0.5},
    )
    broker = Broker(config)
    publisher = aredis.Redis.from_url(redis_url)
    channel = f"{prefix}:broadcast:silent"
    listener = Collector()
    try:
        await broker.start()
        await broker.subscribe(listener, [channel])
        proxy.cut()
        await wait_until(lambda: not broker.connected, timeout=5000 * MS, what="the cut noticed")
        # An attempt now hangs on the silent proxy, as long as nothing bounds it.
        await wait_until(lambda: proxy.held, timeout=5000 * MS, what="a reconnection through the silent proxy")
        proxy.silent = False
        await wait_until(lambda: broker.connected, timeout=10_000 * MS, what="reconnected once Redis answers")

        async def delivered() -> bool:
            # A publish per poll, until one arrives: the broker may still be subscribing again.
            if b"back" in listener.payloads:
                return True
            await publisher.publish(channel, "back")
            return False

        await wait_until(delivered, timeout=5000 * MS, what="a message after the reconnection")
    finally:
        await broker.aclose()
        await publisher.aclose()
        await proxy.close()

"""Scale and failure: many sockets on one Redis connection, and Redis restarting under them."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aredis
import websockets

from ws4redis_tornado.embedded import RedisServer

from ..utils import MS, wait_until, within
from ..wsclient import refused_with


@pytest.fixture
def own_redis():
    """A Redis of this test's own, so it can be stopped and restarted."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(own_redis):
    return own_redis.url


async def server_connections(client: aredis.Redis, name: str) -> list[dict]:
    return [c for c in await client.client_list() if c.get("name") == name]


@pytest.mark.gen_test(timeout=120)
async def test_500_sockets_on_500_facilities_share_at_most_3_redis_connections(ws_url, config, broker):
    count = 500
    # All handshakes at once: the first subscriptions race each other on a fresh broker.
    sockets = await within(
        asyncio.gather(*(websockets.connect(ws_url(f"f{i}", "subscribe-broadcast")) for i in range(count))),
        60_000 * MS,
    )
    client = aredis.Redis.from_url(config.redis_url)
    try:
        assert broker.channel_count == count
        connections = await server_connections(client, config.redis_options["client_name"])
        assert 1 <= len(connections) <= 3, connections
        assert sum(1 for c in connections if int(c["sub"]) > 0) == 1
        numsub = await client.pubsub_numsub(*(f"{config.prefix}:broadcast:f{i}" for i in range(count)))
        assert all(n == 1 for _, n in numsub), "every channel subscribed exactly once"
        for i in range(count):
            await client.publish(f"{config.prefix}:broadcast:f{i}", f"to {i}")
        received = await within(asyncio.gather(*(ws.recv() for ws in sockets)), 30_000 * MS)
        assert received == [f"to {i}" for i in range(count)]
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
        await client.aclose()


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("config_options", [{"reconnect_max_delay": 0.2}])
async def test_delivery_resumes_after_redis_restarts_without_clients_reconnecting(
    ws_url, own_redis, config, broker, caplog
):
    caplog.set_level(logging.INFO, logger="ws4redis_tornado.broker")
    async with (
        websockets.connect(ws_url("news", "subscribe-broadcast")) as first,
        websockets.connect(ws_url("alerts", "subscribe-broadcast")) as second,
    ):
        await asyncio.get_running_loop().run_in_executor(None, own_redis.stop)
        await wait_until(lambda: not broker.connected)
        await asyncio.get_running_loop().run_in_executor(None, own_redis.start)
        await wait_until(lambda: broker.connected, 10_000 * MS)

        client = aredis.Redis.from_url(config.redis_url)
        try:
            # The broker subscribed again on its own: both channels have their one subscriber.
            async def resubscribed() -> bool:
                counts = await client.pubsub_numsub(
                    f"{config.prefix}:broadcast:news", f"{config.prefix}:broadcast:alerts"
                )
                return all(n == 1 for _, n in counts)

            await wait_until(resubscribed, step=10 * MS)
            assert await client.publish(f"{config.prefix}:broadcast:news", "after restart") == 1
            assert await within(first.recv()) == "after restart"
            assert await client.publish(f"{config.prefix}:broadcast:alerts", "also") == 1
            assert await within(second.recv()) == "also"
            # Publishing from a socket works again too (the command pool reconnects).
        finally:
            await client.aclose()
    messages = [r.getMessage() for r in caplog.records if r.name == "ws4redis_tornado.broker"]
    assert any("lost the redis pub/sub connection" in m for m in messages), messages
    assert any("resubscribed 2 channels" in m for m in messages), messages
    # One warning for the outage, however many attempts it took.
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ws4redis")]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("config_options", [{"reconnect_max_delay": 0.2}])
async def test_sockets_stay_open_while_redis_is_down_and_new_ones_get_503(ws_url, own_redis, broker):
    async with websockets.connect(ws_url("news", "subscribe-broadcast&publish-broadcast")) as ws:
        await asyncio.get_running_loop().run_in_executor(None, own_redis.stop)
        await wait_until(lambda: not broker.connected)
        assert (await refused_with(websockets.connect(ws_url("news", "subscribe-broadcast")))).status_code == 503
        # The open socket is still open: a ping goes through.
        await within(await ws.ping())
        await asyncio.get_running_loop().run_in_executor(None, own_redis.start)
        await wait_until(lambda: broker.connected, 10_000 * MS)
        await ws.send("back")
        # The message is published to Redis again once the command pool reconnects.
        client = aredis.Redis.from_url(own_redis.url)
        try:

            async def published_again() -> bool:
                return await client.get(f"{broker.config.prefix}:broadcast:news") == b"back"

            await wait_until(published_again, step=10 * MS)
        finally:
            await client.aclose()

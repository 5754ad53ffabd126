"""The broker on its own: reference counting, ordering and errors, against the real Redis."""

from __future__ import annotations

import asyncio
import tempfile

import pytest
import redis.asyncio as aredis

from ws4redis_tornado import Broker, Config
from ws4redis_tornado import broker as broker_module
from ws4redis_tornado.broker import Delivery
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerClosed, BrokerUnavailable

from ..redis_topologies import HOST, RedisProcess, redis_hangs
from ..utils import MS, wait_until


class Collector:
    def __init__(self) -> None:
        self.received: list[tuple[bytes, bytes]] = []

    def on_broker_message(self, delivery: Delivery) -> None:
        self.received.append((delivery.channel, delivery.payload))


@pytest.fixture
def client(io_loop, redis_url):
    client = aredis.Redis.from_url(redis_url)
    yield client
    io_loop.run_sync(client.aclose)


async def numsub(client, channel: str) -> int:
    return dict(await client.pubsub_numsub(channel))[channel.encode()]


@pytest.mark.gen_test
async def test_a_channel_is_subscribed_once_and_released_by_its_last_listener(broker, client, prefix):
    channel = f"{prefix}:broadcast:x"
    one, two = Collector(), Collector()
    await broker.subscribe(one, [channel])
    await broker.subscribe(two, [channel])
    assert await numsub(client, channel) == 1
    assert await client.publish(channel, "both") == 1
    await wait_until(lambda: len(one.received) == 1 and len(two.received) == 1)

    broker.unsubscribe(one, [channel])
    await client.publish(channel, "only two")
    await wait_until(lambda: len(two.received) == 2)
    assert len(one.received) == 1
    assert await numsub(client, channel) == 1

    broker.unsubscribe(two, [channel])
    assert broker.channel_count == 0

    async def released() -> bool:
        return await numsub(client, channel) == 0

    await wait_until(released)


@pytest.mark.gen_test
async def test_unsubscribe_then_subscribe_again_keeps_the_channel(broker, client, prefix):
    channel = f"{prefix}:broadcast:flip"
    first, second = Collector(), Collector()
    await broker.subscribe(first, [channel])
    # Leave and come back before the UNSUBSCRIBE has even been written.
    broker.unsubscribe(first, [channel])
    await broker.subscribe(second, [channel])
    await client.publish(channel, "still here")
    await wait_until(lambda: second.received == [(channel.encode(), b"still here")])
    assert await numsub(client, channel) == 1


@pytest.mark.gen_test
async def test_publish_pipelines_publish_and_setex(broker, client, prefix):
    channels = [f"{prefix}:broadcast:a", f"{prefix}:user:john:a"]
    listener = Collector()
    await broker.subscribe(listener, channels[:1])
    assert await broker.publish(channels, b"payload", expire=100) == [1, 0]
    assert await client.get(channels[1]) == b"payload"
    assert 90 < await client.ttl(channels[1]) <= 100
    assert await broker.fetch([*channels, f"{prefix}:nothing"]) == [b"payload", b"payload", None]


@pytest.fixture
def unix_socket_redis():
    """The path of the unix socket a redis-server of this test's own listens on."""
    with tempfile.TemporaryDirectory(prefix="ws4redis-unix-") as directory:
        path = f"{directory}/redis.sock"
        server = RedisProcess([f"unixsocket {path}", "unixsocketperm 700"]).start()
        try:
            yield path
        finally:
            server.stop()


@pytest.mark.gen_test
async def test_the_broker_subscribes_publishes_and_fetches_over_a_unix_socket(unix_socket_redis, prefix):
    channel = f"{prefix}:broadcast:unix"
    listener = Collector()
    async with Broker(Config(redis_url=f"unix://{unix_socket_redis}", prefix=prefix)) as broker:
        await broker.subscribe(listener, [channel])
        assert await broker.publish([channel], b"over the socket", expire=10) == [1]
        await wait_until(lambda: listener.received == [(channel.encode(), b"over the socket")])
        assert await broker.fetch([channel]) == [b"over the socket"]


@pytest.mark.gen_test
async def test_start_fails_naming_the_address_when_redis_is_down():
    port = free_port()
    broker = Broker(Config(redis_url=f"redis://127.0.0.1:{port}/0"))
    with pytest.raises(BrokerUnavailable, match=f"127.0.0.1:{port}"):
        await broker.start()
    await broker.aclose()


@pytest.mark.gen_test
async def test_a_closed_broker_refuses_work(config):
    broker = Broker(config)
    await broker.start()
    await broker.aclose()
    with pytest.raises(BrokerClosed):
        await broker.subscribe(Collector(), ["x"])
    with pytest.raises(BrokerClosed):
        await broker.publish(["x"], b"y")


@pytest.mark.gen_test
async def test_an_unstarted_broker_says_so(config):
    with pytest.raises(BrokerClosed, match="start"):
        await Broker(config).subscribe(Collector(), ["x"])


@pytest.mark.gen_test
async def test_a_failing_listener_does_not_stop_the_others(broker, client, prefix, caplog):
    class Broken:
        def on_broker_message(self, delivery):
            raise RuntimeError("boom")

    channel = f"{prefix}:broadcast:x"
    good = Collector()
    await broker.subscribe(Broken(), [channel])
    await broker.subscribe(good, [channel])
    await client.publish(channel, "m")
    await wait_until(lambda: len(good.received) == 1)
    assert any("failed to take a message" in r.getMessage() for r in caplog.records)


@pytest.mark.gen_test(timeout=15)
async def test_an_unconfirmed_subscription_is_refused_and_forgotten(hangable_redis_server, prefix, monkeypatch):
    monkeypatch.setattr(broker_module, "_CONFIRM_TIMEOUT", 300 * MS)
    url = f"redis://{HOST}:{hangable_redis_server.port}/0"
    channel = f"{prefix}:broadcast:hung"
    listener = Collector()
    async with Broker(Config(redis_url=url, prefix=prefix)) as broker:
        # Redis takes the SUBSCRIBE but answers it only after the sleep, too late.
        async with redis_hangs(hangable_redis_server, 1):
            with pytest.raises(BrokerUnavailable, match="did not confirm the subscription"):
                await broker.subscribe(listener, [channel])
            assert broker.channel_count == 0
        async with aredis.Redis.from_url(url) as client:

            async def given_up() -> bool:
                # The broker's pub/sub connection ran the UNSUBSCRIBE: only the control channel is left.
                return any(c["cmd"] == "unsubscribe" and c["sub"] == "1" for c in await client.client_list())

            await wait_until(given_up)
            assert await numsub(client, channel) == 0
            assert await client.publish(channel, "nobody listens") == 0
    assert listener.received == []


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def on_broker_message(self, delivery: Delivery) -> None:
        self.count += 1


@pytest.mark.gen_test(timeout=60)
async def test_a_flood_from_redis_leaves_the_ioloop_running(broker, client, prefix):
    """A reply redis-py has already read comes back without suspending: without a pause every
    READ_BATCH messages, one loop turn would dispatch the whole backlog while nothing else ran."""
    channel = f"{prefix}:broadcast:flood"
    listeners = [Counter() for _ in range(2000)]
    for listener in listeners:
        await broker.subscribe(listener, [channel])
    messages = 3000
    gaps: list[float] = []
    loop = asyncio.get_running_loop()

    async def probe() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    prober = asyncio.create_task(probe())
    started = loop.time()
    async with client.pipeline(transaction=False) as pipe:
        for number in range(messages):
            pipe.publish(channel, f"m{number:05d}")
        await pipe.execute()
    await wait_until(lambda: listeners[-1].count == messages, timeout=50_000 * MS, what="the flood dispatched")
    took = loop.time() - started
    prober.cancel()
    assert all(listener.count == messages for listener in listeners)
    # With the pause, the longest stretch without the probe running is one batch's dispatch,
    # a small part of the whole; without it, it was most of it.
    assert max(gaps) < took / 4, (max(gaps), took)

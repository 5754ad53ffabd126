"""High availability against real servers: a Sentinel failover, and a Redis Cluster of three masters.

The topologies come from tests/redis_topologies.py; each test gets its own, since some kill a node.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest
import redis.asyncio as aredis
import websockets
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.crc import key_slot
from redis.exceptions import RedisError

from ws4redis_tornado import Broker
from ws4redis_tornado.channels import Principal
from ws4redis_tornado.compat.redis import aclose_sentinel
from ws4redis_tornado.embedded import free_port

from ..redis_topologies import HOST, ClusterSetup, SentinelSetup
from ..utils import MS, wait_until, within

logger = logging.getLogger(__name__)

RECOVERY_BOUND = 15_000 * MS
"""How long after the master dies delivery must be back (the issue's bound)."""


@pytest.fixture
def redis_url() -> str:
    """Nothing listens here: the broker must use the topology, never ``redis_url``."""
    return f"redis://{HOST}:{free_port()}/0"


def broker_records(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ws4redis_tornado.broker"]


def warnings_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("ws4redis")]


async def read_persisted(client: aredis.Redis, key: str, expected: bytes) -> bytes:
    """GET ``key`` until it holds ``expected`` (a socket's publish arrives asynchronously); return it."""

    async def holds_expected() -> bytes | None:
        value = await client.get(key)
        return value if value == expected else None

    return await wait_until(holds_expected, step=10 * MS, what=f"{key} holding {expected!r}")


# -- Sentinel ------------------------------------------------------------------------------------


class TestSentinel:
    @pytest.fixture
    def config_options(self, sentinel_setup) -> dict:
        return {**sentinel_setup.config_options, "reconnect_max_delay": 0.2}

    @pytest.mark.gen_test(timeout=30)
    async def test_closing_the_broker_leaves_no_connection_on_the_sentinels(self, sentinel_setup, config):
        broker = Broker(config)
        await broker.start()
        try:
            if await sentinel_client_count(sentinel_setup) < 1:
                pytest.fail("finding the master should have taken a connection to a sentinel")
            await broker.aclose()

            async def none_left() -> bool:
                return await sentinel_client_count(sentinel_setup) == 0

            await wait_until(none_left, step=10 * MS)
        finally:
            await broker.aclose()

    @pytest.mark.gen_test(timeout=45)
    async def test_delivery_and_publishing_resume_after_the_master_is_killed(
        self, sentinel_setup, config, broker, app, ws_url, caplog
    ):
        caplog.set_level(logging.INFO, logger="ws4redis_tornado.broker")
        setup = sentinel_setup
        news_key, alerts_key = f"{config.prefix}:broadcast:news", f"{config.prefix}:broadcast:alerts"
        sentinel = Sentinel(setup.sentinel_addresses, socket_timeout=1)
        publisher = sentinel.master_for(setup.service_name, socket_timeout=1)
        try:
            async with (
                websockets.connect(ws_url("news", "subscribe-broadcast")) as news,
                websockets.connect(ws_url("alerts", "subscribe-broadcast")) as alerts,
                websockets.connect(ws_url("alerts", "publish-broadcast")) as speaker,
            ):
                assert await publisher.publish(news_key, "before") == 1
                assert await within(news.recv()) == "before"

                killed_at = time.monotonic()
                await asyncio.get_running_loop().run_in_executor(None, setup.master.kill)
                await wait_until(lambda: not broker.connected)
                failover_after, message = await publish_until_heard(sentinel, publisher, setup, news_key, killed_at)
                recovered_after = time.monotonic() - killed_at
                logger.info(
                    "sentinel failover %.2fs, delivery back %.2fs after SIGKILL", failover_after, recovered_after
                )
                assert recovered_after < RECOVERY_BOUND

                # The same sockets, never closed, receive again: nobody reconnected.
                assert await within(news.recv()) == message
                assert await publisher.publish(alerts_key, "alerts too") == 1
                assert await within(alerts.recv()) == "alerts too"
                # A socket's message goes through the command client, which followed the failover too.
                await speaker.send("spoken after failover")
                assert await within(alerts.recv()) == "spoken after failover"
                assert await read_persisted(publisher, alerts_key, b"spoken after failover") == b"spoken after failover"
                assert {ws.close_code for ws in (news, alerts, speaker)} == {None}
                assert len(app.sockets) == 3
        finally:
            await publisher.aclose()
            await publisher.connection_pool.disconnect()
            await aclose_sentinel(sentinel)
        messages = broker_records(caplog)
        assert any("lost the redis pub/sub connection" in m for m in messages), messages
        assert any(
            m.startswith("reconnected to redis at sentinel://") and "resubscribed 2 channels" in m for m in messages
        )
        assert len(warnings_logged(caplog)) == 1, warnings_logged(caplog)


async def sentinel_client_count(setup: SentinelSetup) -> int:
    """Connections to the sentinels other than theirs to each other (named ``sentinel-...``) and ours."""
    count = 0
    for sentinel in setup.sentinels:
        async with aredis.Redis(host=HOST, port=sentinel.port, decode_responses=True) as client:
            own = await client.client_id()
            connections = await client.client_list()
        count += sum(1 for c in connections if not c["name"].startswith("sentinel-") and int(c["id"]) != own)
    return count


async def publish_until_heard(
    sentinel: Sentinel, publisher: aredis.Redis, setup: SentinelSetup, channel: str, killed_at: float
) -> tuple[float, str]:
    """Publish through Sentinel until the new master reports a receiver; return when failover was seen.

    Before the broker has subscribed on the new master nobody hears a message (PUBLISH answers 0),
    so the one that reports a receiver is the first one the socket gets.
    """
    failover_after: float | None = None
    attempts = itertools.count()

    async def heard() -> str | None:
        nonlocal failover_after
        attempt = next(attempts)
        master = await sentinel.discover_master(setup.service_name)
        if master == setup.master.address:
            return None
        assert master == setup.replica.address
        failover_after = failover_after or time.monotonic() - killed_at
        message = f"after failover {attempt}"
        return message if await publisher.publish(channel, message) >= 1 else None

    message = await wait_until(
        heard,
        RECOVERY_BOUND,
        step=50 * MS,
        # No master named yet, or the old one still named and refusing connections.
        ignore=(RedisError,),
        what="delivery after the master died",
        details=lambda: f"failover seen after: {failover_after}",
    )
    assert failover_after is not None
    return failover_after, message


# -- Cluster -------------------------------------------------------------------------------------


async def as_alice(request) -> Principal:
    return Principal(user="alice", groups=("staff", "ops"))


ALL_CHAT_CHANNELS = "subscribe-broadcast&subscribe-group&subscribe-user"


def chat_keys(prefix: str) -> list[str]:
    """Alice's channels on facility ``chat``, in the broker's order, spread over several slots."""
    keys = [f"{prefix}:{name}:chat" for name in ("broadcast", "group:staff", "group:ops", "user:alice")]
    # Keys in different slots: a plain MGET over them would be refused with CROSSSLOT.
    assert len({key_slot(key.encode()) for key in keys}) > 1
    return keys


async def pubsub_node_ports(cluster: ClusterSetup, client_name: str) -> list[int]:
    """The port of each live node holding a subscribed connection named ``client_name``."""
    ports = []
    for node in cluster.nodes:
        if not node.alive:
            continue
        async with aredis.Redis(host=HOST, port=node.port) as client:
            connections = await client.client_list()
        ports += [node.port for c in connections if c.get("name") == client_name and int(c["sub"]) > 0]
    return ports


async def publish_via(node_port: int, channel: str, message: str) -> int:
    async with aredis.Redis(host=HOST, port=node_port) as client:
        return await client.publish(channel, message)


class TestCluster:
    @pytest.fixture
    def config_options(self, cluster) -> dict:
        return {"redis_cluster_nodes": cluster.addresses, "reconnect_max_delay": 0.2}

    @pytest.fixture
    def app_options(self) -> dict:
        return {"process_request": as_alice}

    @pytest.mark.gen_test(timeout=30)
    async def test_subscribers_receive_what_is_published_through_another_node(self, cluster, config, ws_url):
        key = f"{config.prefix}:broadcast:news"
        async with (
            websockets.connect(ws_url("news", "subscribe-broadcast")) as first,
            websockets.connect(ws_url("news", "subscribe-broadcast")) as second,
        ):
            [subscribed_on] = await pubsub_node_ports(cluster, config.redis_options["client_name"])
            others = [node.port for node in cluster.nodes if node.port != subscribed_on]
            assert len(others) == 2
            for port in others:
                # No receiver on the publishing node itself: the cluster bus carries the message.
                assert await publish_via(port, key, f"via {port}") == 0
                assert await within(first.recv()) == f"via {port}"
                assert await within(second.recv()) == f"via {port}"

    @pytest.mark.gen_test(timeout=30)
    async def test_persisted_messages_in_several_slots_are_fetched_on_connect(self, cluster, config, ws_url):
        keys = chat_keys(config.prefix)
        client = RedisCluster(host=HOST, port=cluster.nodes[0].port)
        try:
            for key in keys:
                await client.set(key, f"kept in {key}", ex=60)
        finally:
            await client.aclose()
        async with websockets.connect(ws_url("chat", ALL_CHAT_CHANNELS)) as ws:
            fetched = [await within(ws.recv()) for _ in keys]
        assert fetched == [f"kept in {key}" for key in keys]

    @pytest.mark.gen_test(timeout=30)
    async def test_a_socket_publishes_and_persists_across_slots(self, cluster, config, ws_url):
        keys = chat_keys(config.prefix)
        async with (
            websockets.connect(ws_url("chat", ALL_CHAT_CHANNELS)) as listener,
            websockets.connect(ws_url("chat", "publish-broadcast&publish-group&publish-user")) as speaker,
        ):
            await speaker.send("hello")
            assert [await within(listener.recv()) for _ in keys] == ["hello"] * len(keys)
        client = RedisCluster(host=HOST, port=cluster.nodes[0].port)
        try:
            assert [await read_persisted(client, key, b"hello") for key in keys] == [b"hello"] * len(keys)
            ttls = [await client.ttl(key) for key in keys]
            assert all(0 < ttl <= config.expire for ttl in ttls), ttls
        finally:
            await client.aclose()
        # What a socket persisted, a socket connecting later fetches.
        async with websockets.connect(ws_url("chat", ALL_CHAT_CHANNELS)) as late:
            assert [await within(late.recv()) for _ in keys] == ["hello"] * len(keys)

    @pytest.mark.gen_test(timeout=30)
    async def test_delivery_resumes_on_another_node_when_the_subscribed_node_is_killed(
        self, cluster, config, broker, ws_url, caplog
    ):
        caplog.set_level(logging.INFO, logger="ws4redis_tornado.broker")
        name = config.redis_options["client_name"]
        key = f"{config.prefix}:broadcast:news"
        async with websockets.connect(ws_url("news", "subscribe-broadcast")) as ws:
            [killed] = await pubsub_node_ports(cluster, name)
            killed_at = time.monotonic()
            await asyncio.get_running_loop().run_in_executor(None, cluster.node_at(killed).kill)
            await wait_until(lambda: not broker.connected)
            await wait_until(lambda: broker.connected, RECOVERY_BOUND)
            [now_on] = await pubsub_node_ports(cluster, name)
            assert now_on != killed
            [third] = [node.port for node in cluster.nodes if node.port not in (killed, now_on)]
            # PUBLISH reports local receivers only, so ask the subscribed node when SUBSCRIBE landed.
            async with aredis.Redis(host=HOST, port=now_on) as client:

                async def subscribed() -> bool:
                    return dict(await client.pubsub_numsub(key))[key.encode()] == 1

                await wait_until(subscribed, step=10 * MS)
            await publish_via(third, key, "after the node died")
            assert await within(ws.recv()) == "after the node died"
            logger.info("cluster: delivery back %.2fs after SIGKILL", time.monotonic() - killed_at)
            assert ws.close_code is None
        messages = broker_records(caplog)
        assert any("lost the redis pub/sub connection" in m for m in messages), messages
        assert any(m.startswith("reconnected to redis at cluster://") for m in messages), messages

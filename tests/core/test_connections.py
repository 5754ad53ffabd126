"""RedisTopology builds the same kind of client, synchronous or asyncio, for each topology; nothing connects."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aredis

from ws4redis_tornado import Config
from ws4redis_tornado.connections import RedisTopology, topology_key

SINGLE = Config(redis_url="redis://127.0.0.1:1/3", redis_options={"client_name": "single"})
SENTINEL = Config(redis_sentinels=(("127.0.0.1", 1),), redis_service_name="mymaster")


@pytest.mark.parametrize("config", [SINGLE, SENTINEL], ids=["single", "sentinel"])
def test_the_sync_and_async_clients_are_twins(config):
    topology = RedisTopology(config)
    sync_client = topology.sync_command_client()
    async_client = topology.command_client(max_connections=2, immediate_retries=1)
    assert isinstance(sync_client, redis.Redis)
    assert isinstance(async_client, aredis.Redis)
    assert type(sync_client.connection_pool).__name__ == type(async_client.connection_pool).__name__
    assert async_client.connection_pool.max_connections == 2
    # Raw bytes for both: payloads are decoded by the project, not by redis-py.
    for client in (sync_client, async_client):
        assert client.connection_pool.connection_kwargs["decode_responses"] is False
    topology.close()


def test_the_clients_follow_the_url_and_options():
    kwargs = RedisTopology(SINGLE).sync_command_client().connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["client_name"]) == ("127.0.0.1", 1, 3, "single")


def test_the_topology_key_ignores_what_does_not_change_where_redis_is():
    assert topology_key(SINGLE) == topology_key(SINGLE.replace(prefix="other", expire=5))
    assert topology_key(SINGLE) != topology_key(SINGLE.replace(redis_url="redis://127.0.0.1:1/4"))
    assert topology_key(SINGLE) != topology_key(SINGLE.replace(redis_options={"client_name": "other"}))
    assert topology_key(SINGLE) != topology_key(SENTINEL)


def test_a_pubsub_connection_over_a_unix_socket_can_be_built():
    connection = RedisTopology(Config(redis_url="unix:///run/redis/redis.sock?db=2")).pubsub_connection()
    assert (connection.path, connection.db) == ("/run/redis/redis.sock", 2)


def test_a_tcp_pubsub_connection_keeps_alive_and_never_times_out():
    connection = RedisTopology(SINGLE).pubsub_connection()
    assert connection.socket_keepalive is True
    assert connection.socket_timeout is None

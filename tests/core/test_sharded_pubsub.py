"""Sharded pub/sub in a Redis Cluster (``Config.redis_sharded_pubsub``), against real clusters.

Publishing: every way to a websocket channel (the plain pipeline, the history script, presence
events) uses SPUBLISH, heard by an SSUBSCRIBE on the master owning the channel's slot and by no
plain SUBSCRIBE. The control channel stays on plain pub/sub.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.connection import Connection

from ws4redis_tornado import Config
from ws4redis_tornado.history import split_id
from ws4redis_tornado.publisher import Publisher

from ..redis_topologies import HOST, ClusterSetup
from ..utils import MS, wait_until, within


@contextlib.asynccontextmanager
async def raw_subscriber(port: int, command: str, channel: str) -> AsyncIterator[Connection]:
    """A bare connection to one node that has sent ``command`` (SUBSCRIBE or SSUBSCRIBE) for ``channel``."""
    connection = Connection(host=HOST, port=port, protocol=2)
    await connection.connect()
    try:
        await connection.send_command(command, channel)
        reply = await within(connection.read_response())
        assert reply[0] == command.lower().encode(), reply
        yield connection
    finally:
        await connection.disconnect()


async def next_message(connection: Connection, timeout: float = 5000 * MS) -> list[bytes] | None:
    """The next push on ``connection``, or None if none comes within ``timeout``."""
    return await connection.read_response(timeout=timeout)


def cluster_config(cluster: ClusterSetup, prefix: str, **options: object) -> Config:
    return Config(
        redis_cluster_nodes=cluster.addresses,
        prefix=prefix,
        redis_options={"client_name": f"ws4redis-{prefix}"},
        **options,
    )


class TestPublishing:
    @pytest.mark.gen_test(timeout=30)
    async def test_a_publisher_uses_spublish_on_the_owner_of_the_channel(self, cluster, prefix):
        publisher = Publisher(cluster_config(cluster, prefix, redis_sharded_pubsub=True))
        channel = publisher.channels("news", broadcast=True)[0]
        owner = cluster.master_of(channel)
        try:
            async with (
                raw_subscriber(owner.port, "SSUBSCRIBE", channel) as sharded,
                raw_subscriber(owner.port, "SUBSCRIBE", channel) as classic,
            ):
                assert await publisher.apublish("news", "by slot", broadcast=True) == 1
                assert await next_message(sharded) == [b"smessage", channel.encode(), b"by slot"]
                assert await next_message(classic, 200 * MS) is None
                # The synchronous twin, and the persisted copy beside it.
                assert publisher.publish("news", "again", broadcast=True) == 1
                assert await next_message(sharded) == [b"smessage", channel.encode(), b"again"]
        finally:
            publisher.close()
            await publisher.aclose()

    @pytest.mark.gen_test(timeout=30)
    async def test_the_history_script_publishes_by_slot_with_the_id(self, cluster, prefix):
        publisher = Publisher(cluster_config(cluster, prefix, redis_sharded_pubsub=True, history_size=10))
        channels = [publisher.channels("chat", users=[user])[0] for user in ("alice", "bob", "carol", "dave")]
        # The users' channels spread over the masters, so each script runs on another node.
        assert len({cluster.master_of(channel).port for channel in channels}) > 1
        try:
            for user, channel in zip(("alice", "bob", "carol", "dave"), channels, strict=True):
                async with raw_subscriber(cluster.master_of(channel).port, "SSUBSCRIBE", channel) as sharded:
                    assert await publisher.apublish("chat", f"to {user}", users=[user]) == 1
                    kind, heard_on, payload = await next_message(sharded)
                    stream_id, message = split_id(payload)
                    assert (kind, heard_on, message) == (b"smessage", channel.encode(), f"to {user}".encode())
                    assert stream_id is not None
        finally:
            await publisher.aclose()

    @pytest.mark.gen_test(timeout=30)
    async def test_with_the_setting_off_publishing_stays_plain(self, cluster, prefix):
        publisher = Publisher(cluster_config(cluster, prefix, history_size=10))
        channel = publisher.channels("news", broadcast=True)[0]
        # A plain PUBLISH reaches every node: subscribe on one that does not own the channel.
        elsewhere = next(node for node in cluster.nodes if node is not cluster.master_of(channel))
        try:
            async with raw_subscriber(elsewhere.port, "SUBSCRIBE", channel) as classic:
                await publisher.apublish("news", "plain", broadcast=True)
                kind, heard_on, payload = await next_message(classic)
                assert (kind, heard_on, split_id(payload)[1]) == (b"message", channel.encode(), b"plain")
        finally:
            await publisher.aclose()


async def wait_for_numsub(node_port: int, channel: str, expected: int, *, sharded: bool = True) -> None:
    """Wait until ``node_port`` counts ``expected`` subscribers of ``channel`` (PUBSUB SHARDNUMSUB or NUMSUB)."""
    connection = Connection(host=HOST, port=node_port, protocol=2)
    await connection.connect()
    try:

        async def counted() -> bool:
            await connection.send_command("PUBSUB", "SHARDNUMSUB" if sharded else "NUMSUB", channel)
            return (await connection.read_response())[1] == expected

        await wait_until(counted, step=10 * MS, what=f"{expected} subscribers of {channel} on {node_port}")
    finally:
        await connection.disconnect()

"""Sharded pub/sub in a Redis Cluster (``Config.redis_sharded_pubsub``), against real clusters.

Publishing: every way to a websocket channel (the plain pipeline, the history script, presence
events) uses SPUBLISH, heard by an SSUBSCRIBE on the master owning the channel's slot and by no
plain SUBSCRIBE. The control channel stays on plain pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis
import websockets
from redis.asyncio.connection import Connection
from redis.crc import key_slot

from ws4redis_tornado import Config
from ws4redis_tornado.channels import Principal
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.exceptions import BrokerUnavailable
from ws4redis_tornado.frames import CloseCode
from ws4redis_tornado.history import split_id
from ws4redis_tornado.publisher import Publisher
from ws4redis_tornado.revocation import close_sockets
from ws4redis_tornado.server import demo_publish_command
from ws4redis_tornado.sharded import SlotMap

from ..redis_topologies import HOST, ClusterSetup, RedisProcess
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
        # One user per master, whatever the test's prefix: each script runs on another node.
        by_master: dict[int, tuple[str, str]] = {}
        for user in (f"user{number}" for number in range(30)):
            channel = publisher.channels("chat", users=[user])[0]
            by_master.setdefault(cluster.master_of(channel).port, (user, channel))
        assert len(by_master) > 1
        try:
            for user, channel in by_master.values():
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


# -- subscribing: sockets on a server whose broker subscribes by slot ---------------------------------


async def as_alice(request) -> Principal:
    return Principal(user="alice")


async def as_named(request) -> Principal:
    """``?as=<name>`` connects as that user."""
    return Principal(user=request.query_arguments["as"][0].decode())


def facilities_by_master(cluster: ClusterSetup, prefix: str, per_master: int = 1) -> dict[int, list[str]]:
    """Facilities whose broadcast channels land ``per_master`` on each master: master port -> facilities."""
    found: dict[int, list[str]] = {node.port: [] for node in cluster.nodes}
    for i in itertools.count():
        facility = f"news{i}"
        owner = cluster.master_of(f"{prefix}:broadcast:{facility}").port
        if len(found[owner]) < per_master:
            found[owner].append(facility)
        if all(len(facilities) == per_master for facilities in found.values()):
            return found
    raise AssertionError("unreachable")


async def connections_by_node(cluster: ClusterSetup, client_name: str) -> dict[int, tuple[int, int]]:
    """Per live node: (plain pub/sub connections, sharded pub/sub connections) named ``client_name``."""
    counts = {}
    for node in cluster.processes:
        if not node.alive:
            continue
        async with aredis.Redis(host=HOST, port=node.port) as client:
            connections = [c for c in await client.client_list() if c.get("name") == client_name]
        counts[node.port] = (
            sum(1 for c in connections if int(c["sub"]) > 0),
            sum(1 for c in connections if int(c["ssub"]) > 0),
        )
    return counts


class TestSubscribing:
    @pytest.fixture
    def redis_url(self) -> str:
        """Nothing listens here: the broker must use the cluster, never ``redis_url``."""
        return f"redis://{HOST}:{free_port()}/0"

    @pytest.fixture
    def config_options(self, cluster) -> dict:
        return {"redis_cluster_nodes": cluster.addresses, "redis_sharded_pubsub": True, "reconnect_max_delay": 0.2}

    @pytest.fixture
    def app_options(self) -> dict:
        return {"process_request": as_alice}

    @pytest.mark.gen_test(timeout=40)
    async def test_sockets_on_every_master_receive_through_one_connection_per_master(
        self, cluster, config, broker, ws_url
    ):
        by_master = facilities_by_master(cluster, config.prefix, per_master=2)
        facilities = [facility for group in by_master.values() for facility in group]
        publisher = Publisher(config)
        async with contextlib.AsyncExitStack() as stack:
            sockets = {
                facility: await stack.enter_async_context(websockets.connect(ws_url(facility, "subscribe-broadcast")))
                for facility in facilities
            }
            name = config.redis_options["client_name"]
            counts = await connections_by_node(cluster, name)
            # One sharded connection on each master, holding both of its channels; one plain
            # connection in the whole cluster, for the control channel.
            assert {port: sharded for port, (_, sharded) in counts.items()} == dict.fromkeys(by_master, 1)
            assert sum(plain for plain, _ in counts.values()) == 1
            assert broker.sharded_connection_count == 3
            for port, group in by_master.items():
                for facility in group:
                    await wait_for_numsub(port, f"{config.prefix}:broadcast:{facility}", 1)
            for facility in facilities:
                assert await publisher.apublish(facility, f"to {facility}", broadcast=True) == 1
            for facility, ws in sockets.items():
                assert await within(ws.recv()) == f"to {facility}"
            # A socket publishes by slot too.
            async with websockets.connect(ws_url(facilities[0], "publish-broadcast")) as speaker:
                await speaker.send("spoken")
                assert await within(sockets[facilities[0]].recv()) == "spoken"
        await publisher.aclose()
        for port, group in by_master.items():
            for facility in group:
                await wait_for_numsub(port, f"{config.prefix}:broadcast:{facility}", 0)
        await wait_until(lambda: broker.sharded_connection_count == 0, what="no sharded connection left")

    @pytest.mark.gen_test(timeout=30)
    async def test_a_master_owning_none_of_the_channels_gets_no_connection(self, cluster, config, broker, ws_url):
        by_master = facilities_by_master(cluster, config.prefix, per_master=2)
        port, facilities = next(iter(by_master.items()))
        async with (
            websockets.connect(ws_url(facilities[0], "subscribe-broadcast")),
            websockets.connect(ws_url(facilities[1], "subscribe-broadcast")),
        ):
            counts = await connections_by_node(cluster, config.redis_options["client_name"])
            assert {p for p, (_, sharded) in counts.items() if sharded} == {port}
            assert counts[port][1] == 1
            assert broker.sharded_connection_count == 1

    @pytest.mark.gen_test(timeout=30)
    async def test_a_channel_subscribed_again_at_once_waits_for_its_own_reply(self, cluster, config, broker):
        port = cluster.nodes[0].port
        kept, facility = facilities_by_master(cluster, config.prefix, per_master=2)[port]
        channel = f"{config.prefix}:broadcast:{facility}"
        keeper, first, second = Listener(), Listener(), Listener()
        # Another channel on the same master keeps its connection open throughout.
        await broker.subscribe(keeper, [f"{config.prefix}:broadcast:{kept}"])
        joining = asyncio.ensure_future(broker.subscribe(first, [channel]))
        await asyncio.sleep(0)  # its SSUBSCRIBE is queued
        # Leave and join again before Redis answers: the first reply must not confirm the join,
        # which waits for the SSUBSCRIBE sent after the SUNSUBSCRIBE.
        broker.unsubscribe(first, [channel])
        await within(broker.subscribe(second, [channel]))
        await within(joining)
        # Every reply was counted once: no count is left over to hold up a later join.
        assert channel.encode() not in broker._unconfirmed
        async with aredis.Redis(host=HOST, port=port) as client:
            assert (await client.execute_command("PUBSUB", "SHARDNUMSUB", channel))[1] == 1
        publisher = Publisher(config)
        try:
            assert await publisher.apublish(facility, "heard", broadcast=True) == 1
            await wait_until(lambda: second.messages == [b"heard"])
            assert first.messages == []
        finally:
            await publisher.aclose()
        broker.unsubscribe(second, [channel])
        await wait_for_numsub(port, channel, 0)
        assert broker.sharded_connection_count == 1

    @pytest.mark.gen_test(timeout=30)
    async def test_the_control_channel_stays_plain_and_closes_sockets(self, cluster, config, broker, ws_url):
        [facility] = facilities_by_master(cluster, config.prefix)[cluster.nodes[1].port]
        async with websockets.connect(ws_url(facility, "subscribe-broadcast")) as ws:
            # A plain PUBLISH in a cluster counts the receivers of the node it went to only: no count.
            await close_sockets(broker, users=["alice"])
            with pytest.raises(websockets.ConnectionClosed):
                await within(ws.recv())
            assert ws.close_code == CloseCode.ACCESS_CHANGED


class TestPresence:
    @pytest.fixture
    def redis_url(self) -> str:
        return f"redis://{HOST}:{free_port()}/0"

    @pytest.fixture
    def config_options(self, cluster) -> dict:
        return {"redis_cluster_nodes": cluster.addresses, "redis_sharded_pubsub": True, "presence": ("room",)}

    @pytest.fixture
    def app_options(self) -> dict:
        return {"process_request": as_named}

    @pytest.mark.gen_test(timeout=30)
    async def test_joins_and_leaves_travel_by_slot(self, cluster, config, broker, ws_url):
        channel = f"{config.prefix}:broadcast:room"
        owner = cluster.master_of(channel)
        url = ws_url("room", "subscribe-broadcast&presence&as=watcher")
        async with raw_subscriber(owner.port, "SUBSCRIBE", channel) as classic:
            async with websockets.connect(url) as watcher:
                assert json.loads(await within(watcher.recv()))["presence"]["users"] == {}
                assert json.loads(await within(watcher.recv()))["presence"]["event"] == "join"
                async with websockets.connect(ws_url("room", "subscribe-broadcast&as=john")):
                    assert json.loads(await within(watcher.recv()))["presence"] == {
                        "channel": "broadcast",
                        "event": "join",
                        "user": "john",
                    }
                assert json.loads(await within(watcher.recv()))["presence"] == {
                    "channel": "broadcast",
                    "event": "leave",
                    "user": "john",
                }
            # Announced with SPUBLISH: a plain subscriber heard none of it.
            assert await next_message(classic, 200 * MS) is None


class TestSettingOff:
    @pytest.fixture
    def redis_url(self) -> str:
        return f"redis://{HOST}:{free_port()}/0"

    @pytest.fixture
    def config_options(self, cluster) -> dict:
        return {"redis_cluster_nodes": cluster.addresses}

    @pytest.mark.gen_test(timeout=30)
    async def test_plain_publish_still_reaches_sockets_in_a_cluster(self, cluster, config, broker, ws_url):
        by_master = facilities_by_master(cluster, config.prefix)
        facilities = [facility for group in by_master.values() for facility in group]
        publisher = Publisher(config)
        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(websockets.connect(ws_url(facility, "subscribe-broadcast")))
                for facility in facilities
            ]
            counts = await connections_by_node(cluster, config.redis_options["client_name"])
            assert sum(plain for plain, _ in counts.values()) == 1
            assert sum(sharded for _, sharded in counts.values()) == 0
            assert broker.sharded_connection_count == 0
            for facility in facilities:
                await publisher.apublish(facility, f"plain {facility}", broadcast=True)
            assert [await within(ws.recv()) for ws in sockets] == [f"plain {facility}" for facility in facilities]
        await publisher.aclose()


class Listener:
    """A listener that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def on_broker_message(self, delivery) -> None:
        self.messages.append(delivery.payload)

    def on_broker_lost(self) -> None:
        pass


# -- following the cluster: failover and slot migration --------------------------------------------


def move_slot(cluster: ClusterSetup, slot: int, source: RedisProcess, target: RedisProcess) -> None:
    """Migrate ``slot`` with its keys from ``source`` to ``target``, as ``redis-cli --cluster reshard`` does."""
    source_id, target_id = source.command("CLUSTER", "MYID"), target.command("CLUSTER", "MYID")
    target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while keys := source.command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        source.command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys)
    target.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    source.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


async def publish_until_heard(publisher: Publisher, facility: str, what: str) -> str:
    """Publish by slot until the channel's owner counts a subscriber; return the message that it counted."""
    attempts = itertools.count()

    async def heard() -> str | None:
        message = f"{what} {next(attempts)}"
        return message if await publisher.apublish(facility, message, broadcast=True) >= 1 else None

    # A dead master's slots refuse, or name it, until its replica takes over.
    return await wait_until(heard, 15_000 * MS, step=50 * MS, ignore=(BrokerUnavailable,), what=what)


async def recv_until(ws, message: str, *, containing: bool = False) -> None:
    """Receive until ``message`` (or a frame ``containing`` it, behind its id): earlier frames may come or not."""
    while True:
        frame = await within(ws.recv())
        if frame == message or (containing and message in frame):
            return


class TestFollowingTheCluster:
    @pytest.fixture
    def redis_url(self) -> str:
        return f"redis://{HOST}:{free_port()}/0"

    @pytest.fixture
    def config_options(self, replicated_cluster) -> dict:
        return {
            "redis_cluster_nodes": replicated_cluster.addresses,
            "redis_sharded_pubsub": True,
            "reconnect_max_delay": 0.2,
            "history_size": 10,
        }

    @pytest.mark.gen_test(timeout=50)
    async def test_sockets_on_a_killed_masters_channels_hear_again_from_its_replica(
        self, replicated_cluster, config, broker, ws_url
    ):
        cluster = replicated_cluster
        by_master = facilities_by_master(cluster, config.prefix)
        counts = await connections_by_node(cluster, config.redis_options["client_name"])
        # A master without the plain connection: its loss is the sharded connection's alone.
        killed, survivor = [node for node in cluster.nodes if counts[node.port][0] == 0][:2]
        [facility], [elsewhere] = by_master[killed.port], by_master[survivor.port]
        replica = cluster.replica_of(killed)
        publisher = Publisher(config)
        try:
            async with (
                websockets.connect(ws_url(facility, "subscribe-broadcast")) as plain,
                websockets.connect(ws_url(facility, "subscribe-broadcast&recover")) as recovering,
                websockets.connect(ws_url(elsewhere, "subscribe-broadcast&recover")) as unaffected,
            ):
                assert await publisher.apublish(facility, "before", broadcast=True) == 1
                assert await within(plain.recv()) == "before"
                await asyncio.get_running_loop().run_in_executor(None, killed.kill)
                # The socket that recovers is told to reconnect; the plain one stays, as before.
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await within(recovering.recv())
                assert recovering.close_code == CloseCode.SERVICE_RESTART
                await wait_until(lambda: broker.connected, 15_000 * MS, what="the channel on the promoted replica")
                message = await publish_until_heard(publisher, facility, "after failover")
                await recv_until(plain, message)
                assert cluster.master_of(f"{config.prefix}:broadcast:{facility}") is replica
                counts = await connections_by_node(cluster, config.redis_options["client_name"])
                assert counts[replica.port][1] == 1
                assert sum(sharded for _, sharded in counts.values()) == 2
                # The other master's sockets lost nothing and were not told to reconnect.
                assert await publisher.apublish(elsewhere, "still here", broadcast=True) == 1
                await recv_until(unaffected, "still here", containing=True)
                assert plain.close_code is None and unaffected.close_code is None
                # Counted as an outage of the plain connection would be.
                assert (broker.metrics.redis_reconnects, broker.metrics.redis_down_since) == (1, None)
        finally:
            await publisher.aclose()
        await wait_for_numsub(replica.port, f"{config.prefix}:broadcast:{facility}", 0)
        await wait_until(lambda: broker.sharded_connection_count == 0, what="no sharded connection left")

    @pytest.mark.gen_test(timeout=40)
    async def test_subscriptions_follow_a_manual_failover(self, replicated_cluster, config, broker, ws_url):
        cluster = replicated_cluster
        demoted = cluster.nodes[2]
        [facility] = facilities_by_master(cluster, config.prefix)[demoted.port]
        channel = f"{config.prefix}:broadcast:{facility}"
        promoted = cluster.replica_of(demoted)
        publisher = Publisher(config)
        try:
            async with websockets.connect(ws_url(facility, "subscribe-broadcast")) as ws:
                await wait_for_numsub(demoted.port, channel, 1)
                promoted.command("CLUSTER", "FAILOVER")
                await wait_until(lambda: cluster.master_of(channel) is promoted, 10_000 * MS, what="the failover")
                # The demoted master dropped the subscription; the process subscribed on the new one.
                await wait_for_numsub(promoted.port, channel, 1)
                message = await publish_until_heard(publisher, facility, "after the failover")
                await recv_until(ws, message)
                counts = await connections_by_node(cluster, config.redis_options["client_name"])
                assert (counts[promoted.port][1], counts[demoted.port][1]) == (1, 0)
                assert ws.close_code is None
        finally:
            await publisher.aclose()
        await wait_for_numsub(promoted.port, channel, 0)

    @pytest.mark.gen_test(timeout=40)
    async def test_a_channel_whose_slot_moved_unnoticed_is_subscribed_where_moved_points(
        self, replicated_cluster, config, broker, ws_url
    ):
        cluster = replicated_cluster
        source, target = cluster.nodes[0], cluster.nodes[1]
        kept, moved = facilities_by_master(cluster, config.prefix, per_master=2)[source.port]
        channel = f"{config.prefix}:broadcast:{moved}"
        publisher = Publisher(config)
        try:
            # A socket on the source keeps its connection; the moved slot holds none of our channels,
            # so Redis has nothing to tell us: the process's map still names the source.
            async with websockets.connect(ws_url(kept, "subscribe-broadcast")):
                await asyncio.get_running_loop().run_in_executor(
                    None, move_slot, cluster, key_slot(channel.encode()), source, target
                )
                # SSUBSCRIBE on the source is answered with MOVED, and goes where it points.
                async with websockets.connect(ws_url(moved, "subscribe-broadcast")) as ws:
                    await wait_for_numsub(target.port, channel, 1)
                    assert await publisher.apublish(moved, "found", broadcast=True) == 1
                    assert await within(ws.recv()) == "found"
                assert broker.connected
        finally:
            await publisher.aclose()

    @pytest.mark.gen_test(timeout=40)
    async def test_subscriptions_follow_a_migrated_slot(self, replicated_cluster, config, broker, ws_url):
        cluster = replicated_cluster
        source, target = cluster.nodes[0], cluster.nodes[1]
        [facility] = facilities_by_master(cluster, config.prefix)[source.port]
        channel = f"{config.prefix}:broadcast:{facility}"
        publisher = Publisher(config)
        try:
            async with (
                websockets.connect(ws_url(facility, "subscribe-broadcast")) as ws,
                websockets.connect(ws_url(facility, "subscribe-broadcast&recover")) as recovering,
            ):
                # A persisted message in the slot moves with it.
                assert await publisher.apublish(facility, "before", broadcast=True) == 1
                assert await within(ws.recv()) == "before"
                await asyncio.get_running_loop().run_in_executor(
                    None, move_slot, cluster, key_slot(channel.encode()), source, target
                )
                # Messages published on the new owner before the subscription got there are lost:
                # the socket that recovers is told to reconnect.
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await within(recovering.recv())
                assert recovering.close_code == CloseCode.SERVICE_RESTART
                await wait_for_numsub(target.port, channel, 1)
                await wait_for_numsub(source.port, channel, 0)
                assert await publisher.apublish(facility, "after the move", broadcast=True) == 1
                assert await within(ws.recv()) == "after the move"
                # The source owns none of the process's channels any more: its connection went.
                counts = await connections_by_node(cluster, config.redis_options["client_name"])
                assert (counts[source.port][1], counts[target.port][1]) == (0, 1)
                assert broker.sharded_connection_count == 1
                assert ws.close_code is None
        finally:
            await publisher.aclose()
        await wait_for_numsub(target.port, channel, 0)
        await wait_until(lambda: broker.sharded_connection_count == 0, what="no sharded connection left")


# -- the slot map, pure ------------------------------------------------------------------------------


def test_the_slot_map_names_each_slots_master_and_follows_a_moved_slot():
    reply = [
        [0, 5460, [b"10.0.0.1", 7000, b"id1"], [b"10.0.0.4", 7000, b"id4"]],
        [5461, 10922, [b"", 7001, b"id2"]],
        [10923, 16383, [b"10.0.0.3", 7002, b"id3"]],
    ]
    slots = SlotMap.from_reply(reply, asked=("10.0.0.9", 7001))
    assert [slots.owner(slot) for slot in (0, 5460, 5461, 16383)] == [
        ("10.0.0.1", 7000),
        ("10.0.0.1", 7000),
        ("10.0.0.9", 7001),  # a master announcing no address is the one asked
        ("10.0.0.3", 7002),
    ]
    assert slots.owner(16384) is None
    moved = slots.moved(100, ("10.0.0.3", 7002))
    assert [moved.owner(slot) for slot in (99, 100, 101)] == [
        ("10.0.0.1", 7000),
        ("10.0.0.3", 7002),
        ("10.0.0.1", 7000),
    ]
    assert slots.owner(100) == ("10.0.0.1", 7000)
    edge = SlotMap([(0, 16383, ("a", 1))]).moved(0, ("b", 2))
    assert (edge.owner(0), edge.owner(1), edge.owner(16383)) == (("b", 2), ("a", 1), ("a", 1))
    assert sorted(edge.masters) == [("a", 1), ("b", 2)]


def test_the_demo_page_names_spublish_for_a_sharded_cluster():
    nodes = [("127.0.0.1", 7000)]
    assert demo_publish_command(Config(redis_cluster_nodes=nodes, redis_sharded_pubsub=True)).startswith("SPUBLISH ")
    assert demo_publish_command(Config(redis_cluster_nodes=nodes)).startswith("PUBLISH ")

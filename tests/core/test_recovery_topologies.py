"""History and recovery on a Redis Cluster (channels in several slots) and through Sentinel."""

from __future__ import annotations

import pytest
import websockets
from redis.crc import key_slot

from ws4redis_tornado.channels import Principal
from ws4redis_tornado.embedded import free_port
from ws4redis_tornado.history import history_key
from ws4redis_tornado.publisher import Publisher

from ..redis_topologies import HOST
from .test_recovery import opening, recovering, unwrap

# One group name with a lone "}": its history cannot simply wrap the channel in a hash tag.
GROUPS = ("staff", "ops", "a}b")
LABELS = ["broadcast", *(f"group:{group}" for group in GROUPS), "user"]


async def as_alice(request) -> Principal:
    return Principal(user="alice", groups=GROUPS)


@pytest.fixture
def redis_url() -> str:
    """Nothing listens here: the broker must use the topology."""
    return f"redis://{HOST}:{free_port()}/0"


@pytest.fixture
def app_options() -> dict:
    return {"process_request": as_alice}


async def publish_to_alice(publisher: Publisher, *messages: str) -> None:
    for message in messages:
        await publisher.apublish("chat", message, broadcast=True, groups=GROUPS, users=["alice"])


async def recovers_across_channels(config, ws_url) -> None:
    """Every channel of alice's, in whatever slot, recovers what was published while she was away."""
    query = "subscribe-broadcast&subscribe-group&subscribe-user"
    publisher = Publisher(config)
    try:
        await publish_to_alice(publisher, "before")
        async with websockets.connect(recovering(ws_url, "chat", query=query)) as ws:
            received, report = await opening(ws)
        assert [message for _, message in received] == ["before"] * len(LABELS)
        positions = {label: state["id"] for label, state in report.items()}
        assert sorted(positions) == sorted(LABELS)
        await publish_to_alice(publisher, "missed 1", "missed 2")
        async with websockets.connect(recovering(ws_url, "chat", positions, query=query)) as ws:
            received, report = await opening(ws)
            assert [message for _, message in received] == [
                message for _ in LABELS for message in ("missed 1", "missed 2")
            ]
            assert all(state["recovered"] for state in report.values()), report
            await publish_to_alice(publisher, "live")
            live = [unwrap(await ws.recv()) for _ in LABELS]
        assert sorted(header["channel"] for header, _ in live) == sorted(LABELS)
        assert {message for _, message in live} == {"live"}
    finally:
        await publisher.aclose()


class TestCluster:
    @pytest.fixture
    def config_options(self, cluster) -> dict:
        return {"redis_cluster_nodes": cluster.addresses, "history_size": 10}

    def test_the_channels_are_spread_over_slots_and_each_history_shares_its_channels(self, prefix):
        channels = [f"{prefix}:{name}:chat" for name in ("broadcast", "group:staff", "group:a}b", "user:alice")]
        assert len({key_slot(channel.encode()) for channel in channels}) > 1
        for channel in channels:
            assert key_slot(history_key(channel).encode()) == key_slot(channel.encode())

    @pytest.mark.gen_test(timeout=30)
    async def test_every_channel_recovers_in_whatever_slot(self, config, ws_url):
        await recovers_across_channels(config, ws_url)


class TestSentinel:
    @pytest.fixture
    def config_options(self, sentinel_setup) -> dict:
        return {**sentinel_setup.config_options, "history_size": 10}

    @pytest.mark.gen_test(timeout=30)
    async def test_every_channel_recovers_through_sentinel(self, config, ws_url):
        await recovers_across_channels(config, ws_url)

"""Presence from Django: sockets of logged-in users and anonymous sessions, read by RedisPublisher."""

from __future__ import annotations

import json

import pytest

from django_bridge.publisher import RedisPublisher
from ws4redis_tornado.presence import Presence, PresenceStats

from ..utils import MS, wait_until
from ..wsclient import recv
from .test_server import connect

pytestmark = pytest.mark.parametrize(
    "bridge_settings", [{"WS4REDIS_PRESENCE": ["lobby"], "WS4REDIS_PRESENCE_INTERVAL": 0.2}]
)


@pytest.mark.gen_test(timeout=30)
async def test_redis_publisher_reads_who_is_connected_and_their_sockets(app, ws_url, john, mary, anonymous):
    url = ws_url("lobby", "subscribe-broadcast&subscribe-user")
    async with connect(url, john), connect(url, john), connect(url, mary), connect(url, anonymous):
        everybody = RedisPublisher(facility="lobby", broadcast=True)

        async def all_there() -> bool:
            return await everybody.apresence() == Presence({"john": 2, "mary": 1}, anonymous=1)

        await wait_until(all_there, 3_000 * MS)
        assert await everybody.apresence_stats() == PresenceStats(users=2, sockets=4, anonymous=1)
        # The user channel of john's is his alone.
        assert await RedisPublisher(facility="lobby", users=["john"]).apresence() == Presence({"john": 2})


@pytest.mark.gen_test(timeout=30)
async def test_sync_reads_from_a_view_thread(app, ws_url, john, io_loop):
    async with connect(ws_url("lobby", "subscribe-broadcast&presence"), john) as ws:
        snapshot = json.loads(await recv(ws))["presence"]
        assert snapshot == {"channel": "broadcast", "users": {}, "anonymous": 0}
        assert json.loads(await recv(ws))["presence"] == {"channel": "broadcast", "event": "join", "user": "john"}
        stats = await io_loop.run_in_executor(None, RedisPublisher(facility="lobby", broadcast=True).presence_stats)
        assert stats == PresenceStats(users=1, sockets=1, anonymous=0)

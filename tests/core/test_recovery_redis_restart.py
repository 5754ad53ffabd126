"""Recovering sockets across a Redis restart that loses the history: told so, then live again."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
import websockets

from ws4redis_tornado.frames import CloseCode
from ws4redis_tornado.history import recover_value
from ws4redis_tornado.publisher import Publisher

from ..utils import MS, wait_until, within
from ..wsclient import closed_with
from .test_resilience import own_redis, redis_url  # noqa: F401  (a Redis this test restarts)

CLIENTS = 20


@pytest.fixture
def config_options() -> dict:
    return {"history_size": 100, "reconnect_max_delay": 0.2}


async def opening(ws) -> dict:
    while True:
        data = await within(ws.recv(), 5_000 * MS)
        if "\n" not in data:
            return json.loads(data)["recovery"]


@pytest.mark.gen_test(timeout=60)
async def test_sockets_told_their_history_is_lost_receive_what_follows(ws_url, own_redis, config, broker):  # noqa: F811
    publisher = Publisher(config)
    try:
        first = [await websockets.connect(ws_url("news", "subscribe-broadcast&recover")) for _ in range(CLIENTS)]
        positions = [(await opening(ws))["broadcast"]["id"] for ws in first]
        await publisher.apublish("news", "before", broadcast=True)
        for i, ws in enumerate(first):
            header = json.loads((await within(ws.recv())).partition("\n")[0])
            positions[i] = header["id"]
        await asyncio.get_running_loop().run_in_executor(None, own_redis.stop)
        for ws in first:
            assert (await closed_with(ws))[0] == CloseCode.SERVICE_RESTART
        await asyncio.get_running_loop().run_in_executor(None, own_redis.start)
        await wait_until(lambda: broker.connected, 10_000 * MS)
        await publisher.aclose()
        await publisher.apublish("news", "after restart", broadcast=True)
        again = []
        for position in positions:
            query = "subscribe-broadcast&recover=" + quote(recover_value({"broadcast": position}))
            again.append(await websockets.connect(ws_url("news", query)))
        reports = [await opening(ws) for ws in again]
        assert all(report["broadcast"]["recovered"] is False for report in reports), reports
        await publisher.apublish("news", "live", broadcast=True)
        for ws in again:
            assert (await within(ws.recv(), 3_000 * MS)).endswith("\nlive")
    finally:
        await publisher.aclose()
        publisher.close()

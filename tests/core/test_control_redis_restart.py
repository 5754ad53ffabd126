"""A control socket when the server loses Redis: closed with 1012, so that its client subscribes
again; a plain socket stays open, as it always did."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from ws4redis_tornado.control import SUBPROTOCOL
from ws4redis_tornado.frames import CloseCode

from ..utils import MS, within
from ..wsclient import assert_silent, closed_with
from .test_resilience import own_redis, redis_url  # noqa: F401  (a Redis this test restarts)


@pytest.fixture
def config_options() -> dict:
    return {"reconnect_max_delay": 0.2}


@pytest.mark.gen_test(timeout=30)
async def test_a_control_socket_is_closed_with_1012_and_a_plain_one_stays(ws_url, own_redis):  # noqa: F811
    async with (
        websockets.connect(ws_url(""), subprotocols=[SUBPROTOCOL]) as control,
        websockets.connect(ws_url("news", "subscribe-broadcast")) as plain,
    ):
        await control.send(json.dumps({"op": "subscribe", "ref": 1, "facility": "news", "audiences": ["broadcast"]}))
        assert json.loads(await within(control.recv(), 3000 * MS))["ok"]
        await asyncio.get_running_loop().run_in_executor(None, own_redis.stop)
        assert (await closed_with(control))[0] == CloseCode.SERVICE_RESTART
        await assert_silent(plain)
        assert plain.state is websockets.State.OPEN
        await asyncio.get_running_loop().run_in_executor(None, own_redis.start)

"""The staff status page: every serving process's report, read from Redis, as HTML and as JSON."""

from __future__ import annotations

import json

import pytest
import websockets
from django.contrib.auth.models import User
from django.db import connections
from django.test import Client

from ws4redis_tornado.status import status_key

from ..utils import wait_until
from .conftest import PASSWORD

INTERVAL = 0.2


@pytest.fixture
def bridge_settings() -> dict:
    return {"WS4REDIS_STATUS_INTERVAL": INTERVAL}


@pytest.fixture(scope="module")
def staff(database) -> str:
    User.objects.create_user("operator", password=PASSWORD, is_staff=True)
    connections.close_all()
    return "operator"


def status_json(username: str | None) -> tuple[int, dict | None]:
    client = Client()
    if username:
        assert client.login(username=username, password=PASSWORD)
    response = client.get("/ws4redis/status/", {"format": "json"})
    connections.close_all()
    return response.status_code, json.loads(response.content) if response.status_code == 200 else None


@pytest.mark.gen_test
async def test_staff_see_each_processs_sockets_facilities_and_redis_state(ws_url, app, staff, io_loop):
    async with (
        websockets.connect(ws_url("chat", "subscribe-broadcast")),
        websockets.connect(ws_url("chat", "subscribe-broadcast")),
        websockets.connect(ws_url("news", "subscribe-broadcast")),
    ):

        async def three_sockets_reported() -> bool:
            code, body = await io_loop.run_in_executor(None, status_json, staff)
            return code == 200 and any(p["sockets"] == 3 for p in body["processes"])

        await wait_until(three_sockets_reported, what="a report with the three sockets")
        _, body = await io_loop.run_in_executor(None, status_json, staff)
    [process] = body["processes"]
    assert process["facilities"] == [["chat", 2], ["news", 1]]
    assert process["channels"] == 2
    assert process["redis"]["connected"] is True and process["redis"]["reconnects"] == 0
    assert body["totals"] == {"processes": 1, "sockets": 3, "channels": 2}
    html = await io_loop.run_in_executor(None, lambda: _html(staff))
    assert process["process"] in html and "chat (2)" in html


def _html(username: str) -> str:
    client = Client()
    client.login(username=username, password=PASSWORD)
    response = client.get("/ws4redis/status/")
    connections.close_all()
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.gen_test
async def test_others_are_refused_and_anonymous_visitors_sent_to_log_in(app, john, io_loop, users):
    assert (await io_loop.run_in_executor(None, status_json, "john"))[0] == 403
    assert (await io_loop.run_in_executor(None, status_json, None))[0] == 302


@pytest.mark.gen_test
async def test_a_process_that_stopped_reporting_is_dropped(app, staff, redis_client, prefix, io_loop):
    stale = {
        "process": "gone:1",
        "updated": 0,
        "sockets": 5,
        "channels": 1,
        "facilities": [],
        "redis": {},
        "errors": [],
    }
    redis_client.hset(status_key(prefix), "gone:1", json.dumps(stale))
    _, body = await io_loop.run_in_executor(None, status_json, staff)
    assert "gone:1" not in [p["process"] for p in body["processes"]]
    assert not redis_client.hexists(status_key(prefix), "gone:1")

"""Presence on a control socket: a subscription counts the socket as present, and a subscribe that
asks for it gets who is there, then join and leave events, each naming its facility."""

from __future__ import annotations

import json

import pytest
import websockets

from ws4redis_tornado.channels import Principal
from ws4redis_tornado.control import SUBPROTOCOL

from ..wsclient import assert_silent, recv, refused_with


def _identify(request):
    user = request.headers.get("X-User")
    return Principal(user=user) if user else None


pytestmark = pytest.mark.parametrize("app_options", [{"process_request": _identify}])


@pytest.fixture
def config_options() -> dict:
    return {"presence": ("lobby",), "presence_interval": 1.0}


def control(ws_url, user: str):
    return websockets.connect(ws_url(""), subprotocols=[SUBPROTOCOL], additional_headers={"X-User": user})


def plain(ws_url, user: str):
    return websockets.connect(ws_url("lobby", "subscribe-broadcast&presence"), additional_headers={"X-User": user})


async def frame(ws) -> dict:
    data = await recv(ws)
    assert "\n" not in data, data
    return json.loads(data)


def subscribe(ref: int, facility: str = "lobby", **fields) -> str:
    return json.dumps({"op": "subscribe", "ref": ref, "facility": facility, "audiences": ["broadcast"], **fields})


@pytest.mark.gen_test
async def test_a_subscribe_with_presence_gets_who_is_there_then_joins_and_leaves(ws_url):
    async with plain(ws_url, "mary") as mary:
        assert (await frame(mary))["presence"]["users"] == {}
        assert (await frame(mary))["presence"] == {"channel": "broadcast", "event": "join", "user": "mary"}
        async with control(ws_url, "john") as john:
            await john.send(subscribe(1, presence=True))
            snapshot = await frame(john)
            assert snapshot == {
                "presence": {"facility": "lobby", "channel": "broadcast", "users": {"mary": 1}, "anonymous": 0}
            }
            assert (await frame(john))["reply"] == 1
            joined = {"facility": "lobby", "channel": "broadcast", "event": "join", "user": "john"}
            assert (await frame(john))["presence"] == joined
            assert (await frame(mary))["presence"] == {"channel": "broadcast", "event": "join", "user": "john"}
            await john.send(json.dumps({"op": "unsubscribe", "ref": 2, "facility": "lobby"}))
            assert (await frame(john))["reply"] == 2
            assert (await frame(mary))["presence"] == {"channel": "broadcast", "event": "leave", "user": "john"}
            await john.send(subscribe(3))  # counted again, without asking for events
            assert (await frame(john))["reply"] == 3
            assert (await frame(mary))["presence"]["event"] == "join"
            await assert_silent(john)
        assert (await frame(mary))["presence"] == {"channel": "broadcast", "event": "leave", "user": "john"}


@pytest.mark.gen_test
async def test_presence_on_a_facility_that_keeps_none_is_a_bad_request(ws_url):
    async with control(ws_url, "john") as john:
        await john.send(subscribe(1, "news", presence=True))
        reply = await frame(john)
        assert (reply["ok"], reply["error"]) == (False, "bad-request")
        assert "presence is not kept" in reply["reason"]
        await john.send(subscribe(2, "lobby", presence="yes"))
        assert (await frame(john))["error"] == "bad-request"


@pytest.mark.gen_test
async def test_the_url_presence_parameter_points_a_control_socket_to_the_request(ws_url):
    response = await refused_with(
        websockets.connect(ws_url("lobby", "subscribe-broadcast&presence"), subprotocols=[SUBPROTOCOL])
    )
    assert response.status_code == 400 and b"ask for presence in a subscribe request" in response.body

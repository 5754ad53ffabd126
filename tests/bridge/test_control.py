"""The control protocol under Django: each subscribe and publish runs the project's hooks on the
Django request of the handshake, with the logged-in user's own channels."""

from __future__ import annotations

import json

import pytest
import websockets
from django.core.exceptions import PermissionDenied
from django.test import override_settings

from django_bridge.publisher import RedisPublisher
from ws4redis_tornado.control import SUBPROTOCOL
from ws4redis_tornado.messages import RedisMessage

from ..utils import wait_until
from ..wsclient import assert_silent, recv, refused_with


def control(url: str, session: str | None = None):
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return websockets.connect(url, additional_headers=headers, subprotocols=[SUBPROTOCOL])


async def request(ws, ref: int, op: str, facility: str, **fields) -> dict:
    await ws.send(json.dumps({"op": op, "ref": ref, "facility": facility, **fields}))
    reply = json.loads(await recv(ws))
    assert reply["reply"] == ref, reply
    return reply


def staff_rooms_for_admins(request, facility):
    """Facilities named ``staff-*`` are for the admins group; a ``closed`` one for nobody."""
    if facility == "closed":
        raise PermissionDenied("this room is closed")
    return not facility.startswith("staff-") or request.user.groups.filter(name="admins").exists()


def subscribe_only(request, channels):
    return [channel for channel in channels if channel.startswith("subscribe-")]


@pytest.mark.gen_test
async def test_the_facility_hook_runs_for_every_subscribe_with_the_handshakes_user(ws_url, john, mary):
    with override_settings(WS4REDIS_ALLOWED_FACILITIES=staff_rooms_for_admins):
        async with control(ws_url(""), john) as admin, control(ws_url(""), mary) as member:
            assert (await request(admin, 1, "subscribe", "staff-room", audiences=["broadcast"]))["ok"]
            refused = await request(member, 1, "subscribe", "staff-room", audiences=["broadcast"])
            assert (refused["error"], refused["reason"]) == ("forbidden", "not allowed on the facility 'staff-room'")
            closed = await request(admin, 2, "subscribe", "closed", audiences=["broadcast"])
            assert (closed["error"], closed["reason"]) == ("forbidden", "this room is closed")
            assert (await request(member, 2, "subscribe", "lobby", audiences=["broadcast", "user"]))["ok"]
            await RedisPublisher(facility="staff-room", broadcast=True).apublish_message(RedisMessage("admins only"))
            await RedisPublisher(facility="lobby", users=["mary"]).apublish_message(RedisMessage("hi mary"))
            header, _, message = (await recv(admin)).partition("\n")
            assert (json.loads(header)["facility"], message) == ("staff-room", "admins only")
            header, _, message = (await recv(member)).partition("\n")
            assert json.loads(header) == {"facility": "lobby", "channel": "user", "id": None}
            assert message == "hi mary"
            await assert_silent(member)


@pytest.mark.gen_test
async def test_the_facility_hook_guards_the_handshake_too(ws_url, mary):
    with override_settings(WS4REDIS_ALLOWED_FACILITIES="tests.bridge.test_control.staff_rooms_for_admins"):
        response = await refused_with(
            websockets.connect(
                ws_url("staff-room", "subscribe-broadcast"), additional_headers={"Cookie": f"sessionid={mary}"}
            )
        )
        assert response.status_code == 403


@pytest.mark.gen_test
async def test_allowed_channels_decides_what_a_control_socket_may_publish(ws_url, john, redis_client, prefix):
    with override_settings(WS4REDIS_ALLOWED_CHANNELS=subscribe_only):
        async with control(ws_url(""), john) as ws:
            await ws.send('{"op":"publish","ref":1,"facility":"lobby","audience":"broadcast"}\nspam')
            reply = json.loads(await recv(ws))
            assert (reply["ok"], reply["error"]) == (False, "forbidden")
    assert redis_client.get(f"{prefix}:broadcast:lobby") is None
    async with control(ws_url(""), john) as ws:
        await ws.send('{"op":"publish","ref":2,"facility":"lobby","audience":"user"}\nnote to self')
        assert json.loads(await recv(ws)) == {"reply": 2, "ok": True}
    assert redis_client.get(f"{prefix}:user:john:lobby") == b"note to self"


@pytest.mark.gen_test
async def test_closing_a_control_socket_leaves_no_subscription_in_redis(ws_url, john, redis_client, prefix, broker):
    channels = [f"{prefix}:broadcast:room{number}" for number in range(20)] + [f"{prefix}:user:john:room0"]
    async with control(ws_url(""), john) as ws:
        for number in range(20):
            await request(
                ws,
                number,
                "subscribe",
                f"room{number}",
                audiences=["broadcast", "user"] if number == 0 else ["broadcast"],
            )
        assert set(dict(redis_client.pubsub_numsub(*channels)).values()) == {1}
    await wait_until(lambda: broker.channel_count == 0, what="every channel released")
    await wait_until(lambda: set(dict(redis_client.pubsub_numsub(*channels)).values()) == {0}, what="NUMSUB zero")

"""The control protocol end to end: one socket subscribes, unsubscribes and publishes while open.

A real server, a real Redis and websockets clients that offer the ``ws4redis.control`` subprotocol.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from ws4redis_tornado.channels import Principal
from ws4redis_tornado.control import SUBPROTOCOL
from ws4redis_tornado.exceptions import PermissionDenied
from ws4redis_tornado.messages import RedisMessage
from ws4redis_tornado.publisher import apublish
from ws4redis_tornado.server import subscriptions_only

from ..utils import wait_until
from ..wsclient import assert_silent, close_code, recv, refused_with


@pytest.fixture
def publish(redis, config):
    """Publish as RedisPublisher does, to one channel (``broadcast:chat``, ``user:john:chat`` ...)."""

    async def send(channel: str, *messages: str | bytes | RedisMessage, expire: int | None = None) -> None:
        for message in messages:
            await apublish(redis, [f"{config.prefix}:{channel}"], message, config=config, expire=expire)

    return send


def control(ws_url, facility: str = "", query: str = "", **options):
    return websockets.connect(ws_url(facility, query), subprotocols=[SUBPROTOCOL], **options)


def unwrap(data: str | bytes) -> tuple[dict, str | bytes]:
    """The header and the message of a tagged frame."""
    newline = "\n" if isinstance(data, str) else b"\n"
    header, _, message = data.partition(newline)
    return json.loads(header), message


async def request(ws, ref: int, op: str, facility: str, **fields) -> dict:
    """Send one request and return its reply (failing on anything else first)."""
    await ws.send(json.dumps({"op": op, "ref": ref, "facility": facility, **fields}))
    reply = json.loads(await recv(ws))
    assert reply["reply"] == ref, reply
    return reply


async def numsub(redis, channel: str) -> int:
    return dict(await redis.pubsub_numsub(channel))[channel.encode()]


@pytest.mark.gen_test
async def test_a_socket_opened_on_the_bare_url_subscribes_later_and_gets_tagged_messages(ws_url, publish):
    async with control(ws_url) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        reply = await request(ws, 1, "subscribe", "chat", audiences=["broadcast"])
        assert reply == {"reply": 1, "ok": True, "audiences": ["broadcast"], "channels": ["broadcast"]}
        await publish("broadcast:chat", "hello", RedisMessage(b"\x00\xff", binary=True))
        assert await recv(ws) == '{"facility":"chat","channel":"broadcast","id":null}\nhello'
        binary = await recv(ws)
        assert isinstance(binary, bytes)
        assert unwrap(binary) == ({"facility": "chat", "channel": "broadcast", "id": None}, b"\x00\xff")


@pytest.mark.gen_test
async def test_a_plain_client_on_the_same_channel_keeps_todays_frames(ws_url, publish):
    async with control(ws_url) as tagged, websockets.connect(ws_url("chat", "subscribe-broadcast")) as plain:
        await request(tagged, 1, "subscribe", "chat", audiences=["broadcast"])
        await publish("broadcast:chat", "same message")
        assert await recv(plain) == "same message"
        assert unwrap(await recv(tagged))[1] == "same message"


@pytest.mark.gen_test
async def test_the_urls_subscription_is_tagged_and_can_be_unsubscribed(ws_url, publish, redis, prefix):
    await publish("broadcast:news", "persisted")
    async with control(ws_url, "news", "subscribe-broadcast") as ws:
        assert unwrap(await recv(ws)) == ({"facility": "news", "channel": "broadcast", "id": None}, "persisted")
        assert await request(ws, "bye", "unsubscribe", "news") == {
            "reply": "bye",
            "ok": True,
            "audiences": ["broadcast"],
        }
        await wait_until(lambda: _gone(redis, f"{prefix}:broadcast:news"), what="UNSUBSCRIBE")
        await publish("broadcast:news", "after")
        await assert_silent(ws)


async def _gone(redis, channel: str) -> bool:
    return await numsub(redis, channel) == 0


@pytest.mark.gen_test
async def test_several_facilities_on_one_socket_and_switching_one_without_reconnecting(ws_url, publish):
    async with control(ws_url) as ws:
        await request(ws, 1, "subscribe", "room-a", audiences=["broadcast"])
        await request(ws, 2, "subscribe", "notifications", audiences=["broadcast"])
        await publish("broadcast:room-a", "in a")
        await publish("broadcast:notifications", "note")
        assert [unwrap(await recv(ws)) for _ in range(2)] == [
            ({"facility": "room-a", "channel": "broadcast", "id": None}, "in a"),
            ({"facility": "notifications", "channel": "broadcast", "id": None}, "note"),
        ]
        await request(ws, 3, "unsubscribe", "room-a", audiences=["broadcast"])
        await request(ws, 4, "subscribe", "room-b", audiences=["broadcast"])
        await publish("broadcast:room-a", "left behind")
        await publish("broadcast:room-b", "in b")
        assert unwrap(await recv(ws))[0]["facility"] == "room-b"
        await assert_silent(ws)


@pytest.mark.gen_test
async def test_the_persisted_message_comes_before_the_reply(ws_url, publish):
    await publish("broadcast:board", "latest score")
    async with control(ws_url) as ws:
        await ws.send(json.dumps({"op": "subscribe", "ref": 7, "facility": "board", "audiences": ["broadcast"]}))
        assert unwrap(await recv(ws))[1] == "latest score"
        assert json.loads(await recv(ws))["ok"] is True
        await assert_silent(ws)


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"expire": 0}])
async def test_no_message_published_after_the_reply_is_missed_and_none_comes_twice(ws_url, publish):
    """A publisher sends numbered messages throughout the subscribe: the socket gets a gapless run
    that covers every message published after the reply was received."""
    published: list[tuple[float, int]] = []
    loop = asyncio.get_running_loop()

    async def publisher() -> None:
        for number in range(400):
            published.append((loop.time(), number))
            await publish("broadcast:seam", str(number))

    async with control(ws_url) as ws:
        task = asyncio.ensure_future(publisher())
        # Subscribe while the publisher is under way: some messages go before, some after.
        await wait_until(lambda: len(published) >= 20, what="the publisher under way")
        reply = await request(ws, 1, "subscribe", "seam", audiences=["broadcast"])
        replied_at = loop.time()
        assert reply["ok"]
        await task
        numbers = [int(unwrap(await recv(ws))[1])]
        while numbers[-1] < 399:
            numbers.append(int(unwrap(await recv(ws))[1]))
        await assert_silent(ws)
    assert numbers == list(range(numbers[0], 400))
    # A publish sent after the client saw "ok" reached Redis after the SUBSCRIBE was confirmed.
    published_after_reply = [number for sent_at, number in published if sent_at > replied_at]
    assert published_after_reply and numbers[0] <= published_after_reply[0]


def _identify(request):
    user = request.headers.get("X-User")
    return Principal(user=user, groups=("staff", "ops"), session="sess-" + user, request=request) if user else None


def _no_secrets(request, facility):
    if facility == "vault":
        raise PermissionDenied("the vault is closed")
    return facility != "secret"


async def _no_user_channels(request, channels):
    return [channel for channel in channels if not channel.endswith("-user")]


HOOKS = {"process_request": _identify, "allowed_facility": _no_secrets, "allowed_channels": _no_user_channels}


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [HOOKS])
async def test_each_subscribe_runs_the_handshakes_hooks_and_a_refusal_keeps_what_the_socket_had(ws_url, publish):
    async with control(ws_url, additional_headers={"X-User": "john"}) as ws:
        await request(ws, 1, "subscribe", "chat", audiences=["broadcast"])
        refused = await request(ws, 2, "subscribe", "secret", audiences=["broadcast"])
        assert refused == {
            "reply": 2,
            "ok": False,
            "error": "forbidden",
            "reason": "not allowed on the facility 'secret'",
        }
        vault = await request(ws, 3, "subscribe", "vault", audiences=["broadcast"])
        assert (vault["error"], vault["reason"]) == ("forbidden", "the vault is closed")
        narrowed = await request(ws, 4, "subscribe", "inbox", audiences=["user", "group"])
        assert narrowed["audiences"] == ["group"] and narrowed["channels"] == ["group:staff", "group:ops"]
        only_user = await request(ws, 5, "subscribe", "mail", audiences=["user"])
        assert only_user["error"] == "forbidden"
        await publish("broadcast:secret", "hidden")
        await publish("user:john:inbox", "not granted")
        await publish("broadcast:chat", "still here")
        await publish("group:ops:inbox", "for ops")
        assert unwrap(await recv(ws))[1] == "still here"
        assert unwrap(await recv(ws)) == ({"facility": "inbox", "channel": "group:ops", "id": None}, "for ops")
        await assert_silent(ws)


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [HOOKS])
async def test_the_facility_hook_also_guards_the_handshake(ws_url):
    response = await refused_with(websockets.connect(ws_url("secret", "subscribe-broadcast")))
    assert response.status_code == 403 and b"not allowed on the facility 'secret'" in response.body
    response = await refused_with(control(ws_url, "vault", "subscribe-broadcast"))
    assert response.status_code == 403 and b"the vault is closed" in response.body


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"process_request": _identify}])
async def test_no_request_reaches_another_users_channel(ws_url, publish):
    """The user audience is always the socket's own user: no request names a user, group or session."""
    async with control(ws_url, additional_headers={"X-User": "mallory"}) as ws:
        reply = await request(ws, 1, "subscribe", "chat", audiences=["user", "session"], user="john")
        assert reply["channels"] == ["user", "session"]
        await publish("user:john:chat", "for john")
        await publish("session:sess-john:chat", "for john's session")
        await assert_silent(ws)
        await publish("user:mallory:chat", "for mallory")
        assert unwrap(await recv(ws))[1] == "for mallory"
    async with control(ws_url) as anonymous:
        refused = await request(anonymous, 2, "subscribe", "chat", audiences=["user"])
        assert refused["error"] == "forbidden" and "no user channel" in refused["reason"]


MALFORMED = [
    ("not json", None, "bad-request"),
    ("[1, 2]", None, "bad-request"),
    ('{"op":"subscribe","ref":1,"facility":"chat"}', 1, "bad-request"),
    ('{"op":"subscribe","ref":2,"facility":"chat","audiences":[]}', 2, "bad-request"),
    ('{"op":"subscribe","ref":3,"facility":"chat","audiences":["everyone"]}', 3, "bad-request"),
    ('{"op":"dance","ref":4,"facility":"chat"}', 4, "bad-request"),
    ('{"op":"subscribe","ref":5,"audiences":["broadcast"]}', 5, "bad-request"),
    ('{"op":"subscribe","ref":6,"facility":"a:b","audiences":["broadcast"]}', 6, "invalid-facility"),
    ('{"op":"subscribe","ref":7,"facility":"","audiences":["broadcast"]}', 7, "invalid-facility"),
    ('{"op":"subscribe","ref":{"x":1},"facility":"chat","audiences":["broadcast"]}', None, "bad-request"),
    ('{"op":"subscribe","ref":"' + "r" * 65 + '","facility":"chat","audiences":["broadcast"]}', None, "bad-request"),
    ('{"op":"subscribe","ref":8,"facility":"chat","audiences":["broadcast"]}\nextra', 8, "bad-request"),
    (
        '{"op":"subscribe","ref":9,"facility":"chat","audiences":["broadcast"],"recover":{"broadcast":"x"}}',
        9,
        "bad-request",
    ),
    ('{"op":"publish","ref":10,"facility":"chat","audience":"all"}\nhi', 10, "bad-request"),
    (
        '{"op":"subscribe","ref":11,"facility":"chat","audiences":["broadcast"],"pad":"' + "x" * 9000 + '"}',
        None,
        "bad-request",
    ),
    (b"\xff\xfe\n\x00", None, "bad-request"),
]


@pytest.mark.gen_test
async def test_malformed_requests_get_an_error_reply_and_the_socket_stays_subscribed(ws_url, publish):
    async with control(ws_url) as ws:
        await request(ws, 0, "subscribe", "chat", audiences=["broadcast"])
        for frame, ref, code in MALFORMED:
            await ws.send(frame)
            reply = json.loads(await recv(ws))
            assert (reply["reply"], reply["ok"], reply["error"]) == (ref, False, code), frame
            assert reply["reason"]
        await publish("broadcast:chat", "still subscribed")
        assert unwrap(await recv(ws))[1] == "still subscribed"


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"max_subscriptions": 3}])
@pytest.mark.parametrize("app_options", [{"process_request": _identify}])
async def test_subscriptions_per_socket_are_bounded_and_groups_count_one_each(ws_url, config):
    async with control(ws_url, additional_headers={"X-User": "john"}) as ws:
        assert (await request(ws, 1, "subscribe", "a", audiences=["broadcast", "user"]))["ok"]
        refused = await request(ws, 2, "subscribe", "b", audiences=["group"])  # staff and ops: 2 more
        assert refused["error"] == "too-many-subscriptions" and "3 channels" in refused["reason"]
        assert (await request(ws, 3, "subscribe", "a", audiences=["broadcast"]))["ok"]  # held already: free
        assert (await request(ws, 4, "subscribe", "c", audiences=["broadcast"]))["ok"]
        await request(ws, 5, "unsubscribe", "a")
        assert (await request(ws, 6, "subscribe", "b", audiences=["group"]))["ok"]


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("config_options", [{"max_subscriptions": 2000, "publish_rate": 0}])
async def test_two_thousand_subscriptions_on_one_socket_leave_nothing_in_redis_after_it_closes(
    ws_url, redis, prefix, broker, publish
):
    facilities = [f"f{number}" for number in range(2000)]
    channels = [f"{prefix}:broadcast:{facility}" for facility in facilities]
    async with control(ws_url) as ws:
        for number, facility in enumerate(facilities):
            await ws.send(
                json.dumps({"op": "subscribe", "ref": number, "facility": facility, "audiences": ["broadcast"]})
            )
        replies = [json.loads(await recv(ws)) for _ in facilities]
        assert [reply["reply"] for reply in replies if reply["ok"]] == list(range(2000))
        refused = await request(ws, "one more", "subscribe", "f2000", audiences=["broadcast"])
        assert refused["error"] == "too-many-subscriptions"
        counts = dict(await redis.pubsub_numsub(*channels[::199]))
        assert set(counts.values()) == {1}
        await publish("broadcast:f1999", "to the last one")
        assert unwrap(await recv(ws)) == ({"facility": "f1999", "channel": "broadcast", "id": None}, "to the last one")
    await wait_until(lambda: broker.channel_count == 0, what="every channel released")

    async def none_left() -> bool:
        return set(dict(await redis.pubsub_numsub(*channels)).values()) == {0}

    await wait_until(none_left, what="PUBSUB NUMSUB back to zero")


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"publish_rate": 5, "publish_burst": 10}])
async def test_a_subscribe_flood_is_closed_like_a_publish_flood(ws_url):
    async with control(ws_url) as ws:
        for number in range(50):
            await ws.send(
                json.dumps({"op": "subscribe", "ref": number, "facility": f"f{number}", "audiences": ["broadcast"]})
            )
        assert await close_code(ws) == 1008


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"process_request": _identify}])
async def test_a_control_socket_publishes_to_a_named_facility_and_audience(ws_url, publish):
    headers = {"X-User": "john"}
    async with (
        control(ws_url, additional_headers=headers) as sender,
        websockets.connect(ws_url("lobby", "subscribe-broadcast")) as plain,
        websockets.connect(ws_url("lobby", "subscribe-group"), additional_headers={"X-User": "ann"}) as staff,
    ):
        await sender.send('{"op":"publish","ref":1,"facility":"lobby","audience":"broadcast"}\nhello all')
        assert json.loads(await recv(sender)) == {"reply": 1, "ok": True}
        assert await recv(plain) == "hello all"
        await sender.send(b'{"op":"publish","ref":2,"facility":"lobby","audience":"group"}\n\x00\x01')
        assert json.loads(await recv(sender)) == {"reply": 2, "ok": True}
        assert await recv(staff) == b"\x00\x01"
        assert await recv(staff) == b"\x00\x01"  # once per group: staff and ops, as publish-group does


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"allowed_channels": subscriptions_only}])
async def test_publishing_is_refused_where_the_hooks_refuse_it(ws_url, redis, prefix):
    async with control(ws_url) as ws:
        await ws.send('{"op":"publish","ref":1,"facility":"lobby","audience":"broadcast"}\nspam')
        reply = json.loads(await recv(ws))
        assert (reply["ok"], reply["error"]) == (False, "forbidden")
        assert await redis.get(f"{prefix}:broadcast:lobby") is None


@pytest.mark.gen_test
@pytest.mark.parametrize("query", ["", "echo"])
async def test_a_socket_gets_its_own_message_back_only_with_echo(ws_url, query):
    async with control(ws_url, "", query) as ws:
        await request(ws, 1, "subscribe", "talk", audiences=["broadcast"])
        await ws.send('{"op":"publish","ref":2,"facility":"talk","audience":"broadcast"}\nmine')
        # The copy may come before the reply: Redis delivers it before it answers PUBLISH.
        frames = [await recv(ws) for _ in range(2 if query == "echo" else 1)]
        assert '{"reply":2,"ok":true}' in frames
        if query == "echo":
            assert '{"facility":"talk","channel":"broadcast","id":null}\nmine' in frames
        await assert_silent(ws)


@pytest.mark.gen_test
async def test_presence_is_refused_on_a_control_socket(ws_url):
    response = await refused_with(control(ws_url, "chat", "subscribe-broadcast&presence"))
    assert response.status_code == 400


@pytest.mark.gen_test
async def test_a_client_that_does_not_offer_the_subprotocol_needs_a_facility(ws_url):
    response = await refused_with(websockets.connect(ws_url("", "subscribe-broadcast")))
    assert response.status_code == 400


def subscribe_recovering(ref: int, facility: str, positions: dict) -> str:
    return json.dumps(
        {"op": "subscribe", "ref": ref, "facility": facility, "audiences": ["broadcast"], "recover": positions}
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"history_size": 10}])
async def test_a_subscribe_recovers_what_the_client_missed_once_in_order(ws_url, publish):
    await publish("broadcast:feed", "seen")
    async with control(ws_url) as ws:
        await ws.send(subscribe_recovering(1, "feed", {}))
        header, message = unwrap(await recv(ws))
        assert message == "seen" and header["facility"] == "feed"
        seen = header["id"]
        reply = json.loads(await recv(ws))
        assert reply["recovery"] == {"broadcast": {"id": seen, "recovered": True}}
    await publish("broadcast:feed", "m1", "m2")
    async with control(ws_url) as ws:
        await ws.send(subscribe_recovering(2, "feed", {"broadcast": seen}))
        missed = [unwrap(await recv(ws)) for _ in range(2)]
        assert [message for _, message in missed] == ["m1", "m2"]
        ids = [header["id"] for header, _ in missed]
        assert seen < ids[0] < ids[1]
        reply = json.loads(await recv(ws))
        assert reply["ok"] and reply["recovery"] == {"broadcast": {"id": ids[1], "recovered": True}}
        await publish("broadcast:feed", "live")
        header, message = unwrap(await recv(ws))
        assert message == "live" and header["id"] > ids[1]
        await assert_silent(ws)


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"history_size": 3}])
async def test_a_gap_the_history_no_longer_holds_is_reported_instead_of_partly_replayed(ws_url, publish):
    await publish("broadcast:short", "seen")
    async with control(ws_url) as ws:
        await ws.send(subscribe_recovering(1, "short", {}))
        seen = unwrap(await recv(ws))[0]["id"]
    await publish("broadcast:short", *[f"m{number}" for number in range(5)])
    async with control(ws_url) as ws:
        await ws.send(subscribe_recovering(2, "short", {"broadcast": seen}))
        reply = json.loads(await recv(ws))
        assert reply["ok"] and reply["recovery"]["broadcast"]["recovered"] is False
        await assert_silent(ws)


async def subscribe_commands(redis) -> int:
    """How many SUBSCRIBE commands the test's Redis has served so far."""
    return (await redis.info("commandstats")).get("cmdstat_subscribe", {}).get("calls", 0)


@pytest.mark.gen_test
async def test_subscribing_a_channel_another_socket_holds_sends_nothing_to_redis(ws_url, redis, publish):
    async with control(ws_url) as first, control(ws_url) as second:
        await request(first, 1, "subscribe", "shared", audiences=["broadcast"])
        before = await subscribe_commands(redis)
        await request(second, 1, "subscribe", "shared", audiences=["broadcast"])
        assert await subscribe_commands(redis) == before
        await publish("broadcast:shared", "to both")
        assert unwrap(await recv(first))[1] == unwrap(await recv(second))[1] == "to both"
        await request(second, 2, "subscribe", "own", audiences=["broadcast"])
        assert await subscribe_commands(redis) == before + 1

"""The websocket loop end to end: a real Tornado server, a real Redis, real websocket clients."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis
import websockets
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ws4redis_tornado import Principal
from ws4redis_tornado.exceptions import PermissionDenied

from ..rawws import client_frame, handshake, read_frame
from ..utils import MS, wait_until, within
from ..wsclient import assert_silent, close_code, recv, refused_with


@pytest.fixture
def publisher(io_loop, redis_url):
    client = aredis.Redis.from_url(redis_url)
    yield client
    io_loop.run_sync(client.aclose)


@pytest.mark.gen_test
async def test_redis_message_reaches_the_socket(ws_url, publisher, prefix):
    async with websockets.connect(ws_url("news", "subscribe-broadcast")) as ws:
        assert await publisher.publish(f"{prefix}:broadcast:news", "hello") == 1
        assert await recv(ws) == "hello"


@pytest.mark.gen_test
async def test_client_message_is_published_and_persisted(ws_url, publisher, prefix, config):
    channel = f"{prefix}:broadcast:chat"
    async with publisher.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        async with websockets.connect(ws_url("chat", "publish-broadcast")) as ws:
            await ws.send("from the browser")
            message = None
            while message is None or message["type"] != "message":
                message = await within(pubsub.get_message(timeout=1))
            assert message["data"] == b"from the browser"
    assert await publisher.get(channel) == b"from the browser"
    ttl = await publisher.ttl(channel)
    assert 3500 < ttl <= 3600


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"max_persisted_size": 10}])
async def test_a_client_message_over_max_persisted_size_is_published_but_not_kept(ws_url, publisher, prefix):
    channel = f"{prefix}:broadcast:chat"
    async with websockets.connect(ws_url("chat", "publish-broadcast&subscribe-broadcast&echo")) as ws:
        await ws.send("0123456789")
        assert await recv(ws) == "0123456789"
        assert await publisher.get(channel) == b"0123456789"
        await ws.send("0123456789+")
        assert await recv(ws) == "0123456789+"
    assert await publisher.get(channel) == b"0123456789"


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"expire": 0}])
async def test_expire_zero_turns_persistence_off(ws_url, publisher, prefix):
    async with websockets.connect(ws_url("chat", "publish-broadcast&subscribe-broadcast&echo")) as ws:
        await ws.send("not kept")
        assert await recv(ws) == "not kept"
    assert await publisher.get(f"{prefix}:broadcast:chat") is None


@pytest.mark.gen_test
async def test_persisted_messages_are_sent_on_connect(ws_url, publisher, prefix, app):
    await publisher.set(f"{prefix}:broadcast:news", "kept")
    async with websockets.connect(ws_url("news", "subscribe-broadcast")) as ws:
        assert await recv(ws) == "kept"
        await assert_silent(ws)


@pytest.mark.gen_test
async def test_messages_flow_both_ways_between_sockets(ws_url):
    query = "subscribe-broadcast&publish-broadcast"
    async with (
        websockets.connect(ws_url("room", query)) as alice,
        websockets.connect(ws_url("room", query)) as bob,
    ):
        await alice.send("hi bob")
        assert await recv(bob) == "hi bob"
        await bob.send("hi alice")
        assert await recv(alice) == "hi alice"


@pytest.mark.gen_test
async def test_without_echo_a_socket_does_not_get_its_own_message_back(ws_url):
    query = "subscribe-broadcast&publish-broadcast"
    async with (
        websockets.connect(ws_url("room", query)) as sender,
        websockets.connect(ws_url("room", query)) as other,
    ):
        await sender.send("ping")
        assert await recv(other) == "ping"
        await assert_silent(sender)


@pytest.mark.gen_test
async def test_without_echo_only_the_sockets_own_copy_is_dropped(ws_url, publisher, prefix):
    # Equal payloads from anybody else, and a second copy of its own, still arrive.
    query = "subscribe-broadcast&publish-broadcast"
    async with (
        websockets.connect(ws_url("room", query)) as sender,
        websockets.connect(ws_url("room", query)) as other,
    ):
        await sender.send("same")
        assert await recv(other) == "same"
        await other.send("same")
        assert await recv(sender) == "same"
        # One receiver: the process's single subscription serves both sockets.
        assert await publisher.publish(f"{prefix}:broadcast:room", "same") == 1
        assert await recv(sender) == "same"
        assert await recv(other) == "same"
        await assert_silent(sender)


@pytest.mark.gen_test
async def test_without_echo_each_own_message_is_dropped_once(ws_url, publisher, prefix):
    async with websockets.connect(ws_url("room", "subscribe-broadcast&publish-broadcast")) as ws:
        await ws.send("twice")
        await ws.send("twice")
        await assert_silent(ws)
        assert await publisher.publish(f"{prefix}:broadcast:room", "twice") == 1
        assert await recv(ws) == "twice"


@pytest.mark.gen_test
async def test_with_echo_a_socket_gets_its_own_message_back(ws_url):
    async with websockets.connect(ws_url("room", "subscribe-broadcast&publish-broadcast&echo")) as ws:
        await ws.send("ping")
        assert await recv(ws) == "ping"


@pytest.mark.gen_test
async def test_binary_frames_stay_binary_end_to_end(ws_url, publisher, prefix):
    query = "subscribe-broadcast&publish-broadcast&echo"
    async with websockets.connect(ws_url("bin", query)) as ws:
        # Valid UTF-8 sent as binary must come back binary, not as text.
        for data in (b"ascii but binary", b"\x00\xff\xfe\x80"):
            await ws.send(data)
            received = await recv(ws)
            assert isinstance(received, bytes)
            assert received == data
        await ws.send("text stays text")
        assert await recv(ws) == "text stays text"


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"subprotocols": ["chat", "superchat"]}])
async def test_the_first_offered_configured_subprotocol_is_selected(ws_url):
    url = ws_url("p", "subscribe-broadcast")
    async with websockets.connect(url, subprotocols=["other", "superchat", "chat"]) as ws:
        assert ws.subprotocol == "superchat"
    async with websockets.connect(url) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


@pytest.mark.gen_test
async def test_no_subprotocol_is_selected_unless_configured(ws_url):
    async with websockets.connect(ws_url("p", "subscribe-broadcast"), subprotocols=["chat"]) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


def _deny_publishing(request, channels):
    return [channel for channel in channels if channel.startswith("subscribe-")]


def _refuse_everyone(request, channels):
    raise PermissionDenied("members only")


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"allowed_channels": _refuse_everyone}])
async def test_allowed_channels_can_refuse_with_403(ws_url):
    response = await refused_with(websockets.connect(ws_url("chat", "subscribe-broadcast")))
    assert response.status_code == 403
    assert b"members only" in response.body


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"allowed_channels": _deny_publishing}])
async def test_allowed_channels_narrows_what_a_socket_may_do(ws_url, publisher, prefix):
    async with websockets.connect(ws_url("chat", "subscribe-broadcast&publish-broadcast&echo")) as ws:
        await ws.send("should not be published")
        await assert_silent(ws)
        assert await publisher.get(f"{prefix}:broadcast:chat") is None
        await publisher.publish(f"{prefix}:broadcast:chat", "still subscribed")
        assert await recv(ws) == "still subscribed"


def _identify(request):
    user = request.headers.get("X-User")
    return Principal(user=user, groups=("staff",), session="sess-" + user) if user else None


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"process_request": _identify}])
async def test_process_request_decides_user_group_and_session_channels(ws_url, publisher, prefix):
    query = "subscribe-user&subscribe-group&subscribe-session"
    async with websockets.connect(ws_url("f", query), additional_headers={"X-User": "john"}) as ws:
        for key in ("user:john:f", "group:staff:f", "session:sess-john:f"):
            assert await publisher.publish(f"{prefix}:{key}", key) == 1
            assert await recv(ws) == key
    async with websockets.connect(ws_url("f", query)) as anonymous:
        assert await publisher.publish(f"{prefix}:user:john:f", "not for you") == 0
        await assert_silent(anonymous)


_handshake_headers = []


def _remember_headers(request):
    # The object Tornado parsed, which its get() coroutine keeps for as long as the socket is open.
    _handshake_headers.append(request.headers)


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"process_request": _remember_headers}])
async def test_an_open_socket_keeps_nothing_of_its_handshake_and_still_relays(ws_url, app, publisher, prefix):
    _handshake_headers.clear()
    async with websockets.connect(ws_url("news", "subscribe-broadcast"), additional_headers={"X-User": "john"}) as ws:
        await wait_until(lambda: len(app.sockets) == 1)
        [handler] = app.sockets
        [parsed] = _handshake_headers
        assert "X-User" not in parsed and len(parsed) == 0
        request = handler.request
        assert request.headers.get("X-User") is None
        assert not request.arguments and not request.query_arguments and not request.files
        assert not handler.path_args and not handler.path_kwargs
        assert request.connection._request_headers is None
        assert request.path == "/ws/news"
        assert await publisher.publish(f"{prefix}:broadcast:news", "still here") == 1
        assert await recv(ws) == "still here"
        await ws.send("ignored: no publish-broadcast")
        await assert_silent(ws)


async def _async_refusal(request):
    raise PermissionDenied("token expired")


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"process_request": _async_refusal}])
async def test_coroutine_hooks_are_awaited(ws_url):
    assert (await refused_with(websockets.connect(ws_url("f", "subscribe-user")))).status_code == 403


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(("method", "status"), [("GET", 400), ("POST", 405), ("PUT", 405)])
async def test_plain_http_on_the_websocket_url_is_explained(app, http_server, base_url, config, method, status):
    url = f"{base_url}{config.websocket_url}chat?subscribe-broadcast"
    body = b"" if method in ("POST", "PUT") else None
    with pytest.raises(HTTPClientError) as info:
        await AsyncHTTPClient().fetch(url, method=method, body=body)
    assert info.value.code == status
    assert b"this URL serves websockets" in info.value.response.body
    if status == 405:
        assert info.value.response.headers["Allow"] == "GET"


@pytest.mark.gen_test
@pytest.mark.parametrize("facility", ["", "group%3Aother", "with%20space", "ctrl%01char", "tab%09"])
async def test_bad_facility_is_refused_with_400(ws_url, facility):
    response = await refused_with(websockets.connect(ws_url(facility, "subscribe-broadcast")))
    assert response.status_code == 400
    assert b"facility" in response.body
    # The reason phrase says it too.
    assert "facility" in response.reason_phrase


@pytest.mark.gen_test
async def test_invalid_utf8_in_a_text_frame_closes_with_1007(ws_url):
    async with websockets.connect(ws_url("chat", "publish-broadcast")) as ws:
        await ws.send(b"\xff\xfe invalid", text=True)
        assert await close_code(ws) == 1007


@pytest.mark.gen_test
@pytest.mark.parametrize("config_options", [{"max_message_size": 1024}])
async def test_a_message_over_the_maximum_size_closes_with_1009(ws_url):
    async with websockets.connect(ws_url("chat", "publish-broadcast")) as ws:
        await ws.send("x" * 1025)
        assert await close_code(ws) == 1009


@pytest.mark.gen_test
async def test_default_maximum_message_size_is_one_mebibyte(ws_url):
    query = "publish-broadcast&subscribe-broadcast&echo"
    async with websockets.connect(ws_url("chat", query), max_size=None) as ws:
        await ws.send("x" * (1024 * 1024))
        assert len(await recv(ws)) == 1024 * 1024
        await ws.send("x" * (1024 * 1024 + 1))
        assert await close_code(ws) == 1009


@pytest.mark.gen_test
async def test_a_closed_socket_leaves_its_channels(ws_url, broker):
    async with websockets.connect(ws_url("gone", "subscribe-broadcast")):
        assert broker.channel_count == 1
    # The server sees the close a moment later.
    await wait_until(lambda: broker.channel_count == 0)


@pytest.mark.gen_test
async def test_health_endpoint(http_server, base_url, broker):
    response = await AsyncHTTPClient().fetch(f"{base_url}/health")
    assert response.code == 200
    assert b'"redis": "up"' in response.body


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("config_options", [{"ping_interval": 0.1, "ping_timeout": 0.1}])
async def test_a_peer_that_never_answers_pings_is_closed(app, http_server, http_port, broker):
    reader, writer = await handshake("127.0.0.1", http_port, "/ws/dead?subscribe-broadcast")
    try:
        opcode, _ = await within(read_frame(reader), 2000 * MS)
        assert opcode == 0x9  # the server pings...
        # ...and, never answered, closes the connection.
        opcode, _ = await within(read_frame(reader), 2000 * MS)
        assert opcode == 0x8
        await wait_until(lambda: broker.channel_count == 0)
    finally:
        writer.close()


@pytest.mark.gen_test(timeout=20)
@pytest.mark.parametrize("config_options", [{"ping_interval": 0.1, "ping_timeout": 0.1}])
async def test_a_peer_that_answers_pings_stays(app, http_server, http_port, publisher, prefix):
    reader, writer = await handshake("127.0.0.1", http_port, "/ws/alive?subscribe-broadcast")
    try:
        deadline = asyncio.get_running_loop().time() + 0.6
        while asyncio.get_running_loop().time() < deadline:
            opcode, payload = await within(read_frame(reader), 2000 * MS)
            assert opcode == 0x9
            writer.write(client_frame(0xA, payload))
        await publisher.publish(f"{prefix}:broadcast:alive", "still here")
        while True:
            opcode, payload = await within(read_frame(reader), 2000 * MS)
            if opcode == 0x1:
                break
            writer.write(client_frame(0xA, payload))
        assert payload == b"still here"
    finally:
        writer.close()


@pytest.mark.gen_test
async def test_an_open_socket_is_already_subscribed(ws_url, publisher, prefix):
    # The handshake is answered only once Redis confirmed the subscription, so a message
    # published right after the socket opens is never missed.
    for i in range(20):
        async with websockets.connect(ws_url(f"fresh{i}", "subscribe-broadcast")) as ws:
            assert await publisher.publish(f"{prefix}:broadcast:fresh{i}", f"m{i}") == 1
            assert await recv(ws) == f"m{i}"


@pytest.mark.gen_test
async def test_a_cross_origin_handshake_is_refused(ws_url, broker):
    response = await refused_with(
        websockets.connect(ws_url("chat", "subscribe-broadcast"), origin="http://evil.example")
    )
    assert response.status_code == 403
    assert broker.channel_count == 0


@pytest.mark.gen_test
async def test_a_same_origin_handshake_is_accepted(ws_url, http_port):
    async with websockets.connect(ws_url("chat", "subscribe-broadcast"), origin=f"http://127.0.0.1:{http_port}") as ws:
        assert ws.response.status_code == 101


@pytest.mark.gen_test
async def test_a_handshake_completing_after_shutdown_began_is_closed_with_1001(ws_url, app):
    app.close_sockets()
    async with websockets.connect(ws_url("late", "subscribe-broadcast")) as ws:
        assert await close_code(ws) == 1001

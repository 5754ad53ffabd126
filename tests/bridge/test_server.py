"""The Django project served by make_app(): websockets and views on one real port, real Redis.

The first half ports ws4redis' test_chatclient.py; the second covers what django_bridge adds:
the origin policy, override_settings, and Django work that never stalls the IOLoop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module

import pytest
import websockets
from django.conf import settings
from django.test import RequestFactory, override_settings

from django_bridge.publisher import SELF, RedisPublisher
from django_bridge.server import make_app

from ..utils import MS, wait_until, within
from ..wsclient import recv, refused_with
from . import hooks, slow_sessions, views

FACILITY = "unittest"
MESSAGE = "".join(chr(c) for c in range(33, 128))
# The close codes a client may send (RFC 6455 7.4.1; 1004-1006 and 1015 never go on the wire).
CLIENT_CLOSE_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)


def connect(url, session=None, headers=(), **kwargs):
    headers = {**dict(headers), **({"Cookie": f"sessionid={session}"} if session else {})}
    return websockets.connect(url, additional_headers=headers, **kwargs)


def request_of(user, session):
    """A request as one of the user's views sees it (the session loads lazily, in a thread)."""
    request = RequestFactory().get("/chat/")
    request.user = user
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session)
    return request


# -- ws4redis' test_chatclient.py ---------------------------------------------------------------------
# Written with django_bridge.testing (ws_client, on the live server), as a project's own tests would be.


def test_subscribe_broadcast_receives_the_persisted_message(ws_client):
    RedisPublisher(facility=FACILITY, broadcast=True).publish_message(MESSAGE, 10)
    with ws_client.connect(FACILITY, "subscribe-broadcast") as ws:
        assert ws.receive() == MESSAGE
        ws.assert_no_message(300 * MS)


def test_pubsub_broadcast(ws_client):
    listener = ws_client.connect(FACILITY, "subscribe-broadcast", "publish-broadcast")
    speaker = ws_client.connect(FACILITY, "subscribe-broadcast", "publish-broadcast", "echo")
    speaker.send(MESSAGE)
    assert listener.receive() == MESSAGE
    assert speaker.receive() == MESSAGE


def test_publish_broadcast_is_persisted(ws_client, redis_client, prefix):
    # The server handles a socket's frames in order: it has published before it answers the close.
    with ws_client.connect(FACILITY, "publish-broadcast") as ws:
        ws.send(MESSAGE)
    assert RedisPublisher().fetch_message(None, FACILITY, "broadcast") == MESSAGE.encode()
    assert redis_client.get(f"{prefix}:broadcast:{FACILITY}") == MESSAGE.encode()


def test_subscribe_user(ws_client, users):
    RedisPublisher(facility=FACILITY, users=["john", "mary"]).publish_message(MESSAGE, 10)
    with ws_client.connect(FACILITY, "subscribe-user", user=users["john"]) as ws:
        assert ws.receive() == MESSAGE
    with ws_client.connect(FACILITY, "subscribe-user") as anonymous:
        anonymous.assert_no_message(300 * MS)


def test_publish_user(ws_client, users, john):
    with ws_client.connect(FACILITY, "publish-user", cookies={"sessionid": john}) as ws:
        ws.send(MESSAGE)
    publisher = RedisPublisher()
    assert publisher.fetch_message(request_of(users["john"], john), FACILITY, "user") == MESSAGE.encode()
    assert publisher.fetch_message(request_of(None, john), FACILITY, "user") is None


def test_subscribe_group(ws_client, users):
    RedisPublisher(facility=FACILITY, groups=["chatters"]).publish_message(MESSAGE, 10)
    with ws_client.connect(FACILITY, "subscribe-group", user=users["john"]) as ws:
        assert ws.receive() == MESSAGE


def test_publish_group(ws_client, users, mary):
    with ws_client.connect(FACILITY, "publish-group", user=users["john"]) as ws:
        ws.send(MESSAGE)
    # john is in chatters and admins, mary in chatters only: she finds it through chatters.
    found = RedisPublisher().fetch_message(request_of(users["mary"], mary), FACILITY, "group")
    assert found == MESSAGE.encode()


def test_subscribe_session_with_self(ws_client, anonymous):
    publisher = RedisPublisher(facility=FACILITY, sessions=[SELF], request=request_of(None, anonymous))
    publisher.publish_message(MESSAGE, 10)
    with ws_client.connect(FACILITY, "subscribe-session", cookies={"sessionid": anonymous}) as ws:
        assert ws.receive() == MESSAGE


def test_publish_session(ws_client, users, mary):
    with ws_client.connect(FACILITY, "publish-session", cookies={"sessionid": mary}) as ws:
        ws.send(MESSAGE)
    found = RedisPublisher().fetch_message(request_of(users["mary"], mary), FACILITY, "session")
    assert found == MESSAGE.encode()


@pytest.mark.gen_test
async def test_number_of_receivers(ws_url, app, john):
    publisher = RedisPublisher(facility=FACILITY, sessions=[john])
    async with connect(ws_url(FACILITY, "subscribe-session"), session=john) as ws:
        assert await publisher.apublish_message(MESSAGE, 10) == 1
        assert await recv(ws) == MESSAGE
    await wait_until(lambda: not app.sockets)
    assert await publisher.apublish_message(MESSAGE, 10) == 0


@pytest.mark.gen_test
async def test_a_plain_http_request_is_refused(http_client, http_url):
    response = await http_client.fetch(http_url("/ws/foobar"), raise_error=False)
    assert response.code == 400
    assert b"websockets" in response.body
    response = await http_client.fetch(http_url("/ws/foobar"), method="POST", body="", raise_error=False)
    assert response.code == 405


@pytest.mark.parametrize("hook", ["tests.bridge.hooks.deny_on_header", hooks.deny_on_header])
def test_allowed_channels_refuses_with_403(ws_client, hook):
    with override_settings(WS4REDIS_ALLOWED_CHANNELS=hook):
        refusal = ws_client.refused(FACILITY, "subscribe-broadcast&publish-broadcast", headers={"Deny-Channels": "YES"})
        assert refusal.status == 403
        assert b"channels denied by the test hook" in refusal.body
        ws_client.connect(FACILITY, "subscribe-broadcast&publish-broadcast").close()


def test_allowed_channels_as_a_callable_narrows_the_channels(ws_client, redis_client, prefix):
    seen = []

    def no_publishing(request, channels):
        seen.append((request.path, request.user.is_authenticated))
        return [channel for channel in channels if not channel.startswith("publish-")]

    with (
        override_settings(WS4REDIS_ALLOWED_CHANNELS=no_publishing),
        ws_client.connect(FACILITY, "subscribe-broadcast", "publish-broadcast", "echo") as ws,
    ):
        ws.send("not published")
        ws.assert_no_message(300 * MS)
    assert seen == [(f"/ws/{FACILITY}", False)]
    assert redis_client.get(f"{prefix}:broadcast:{FACILITY}") is None


@pytest.mark.gen_test(timeout=15)
async def test_every_close_code_a_client_may_send_is_handled(ws_url, app, broker, prefix, caplog):
    caplog.set_level(logging.WARNING)
    for code in CLIENT_CLOSE_CODES:
        async with connect(ws_url(FACILITY, "subscribe-broadcast&publish-broadcast")) as ws:
            await ws.close(code)
            assert ws.close_code == code, f"the server did not answer the close with {code}"
        await wait_until(lambda: not app.sockets)
    assert broker.listener_count(f"{prefix}:broadcast:{FACILITY}") == 0
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_subprotocol(ws_client):
    # The test settings list it in WS4REDIS_SUBPROTOCOLS; the server selects no other.
    with ws_client.connect(FACILITY, "subscribe-broadcast", subprotocols=["other", "unittestprotocol"]) as ws:
        assert ws.subprotocol == "unittestprotocol"
    with ws_client.connect(FACILITY, "subscribe-broadcast", subprotocols=["other"]) as ws:
        assert ws.subprotocol is None


def test_binary_messages_stay_binary(ws_client):
    listener = ws_client.connect(FACILITY, "subscribe-broadcast")
    speaker = ws_client.connect(FACILITY, "publish-broadcast")
    speaker.send(b"\x00\x01\xfe\xff")
    assert listener.receive() == b"\x00\x01\xfe\xff"
    speaker.send(b"valid UTF-8, sent as binary")
    assert listener.receive() == b"valid UTF-8, sent as binary"
    RedisPublisher(facility=FACILITY, broadcast=True).publish_message(b"\x80 from django")
    assert listener.receive() == b"\x80 from django"


# -- what django_bridge adds -------------------------------------------------------------------------


def test_a_cross_origin_handshake_is_refused(ws_server, ws_client):
    # Another host, another port of the same host (SameSite=Lax cookies still travel), another scheme.
    for origin in (
        "http://evil.example",
        "http://localhost:3000",
        f"http://127.0.0.1:{ws_server.port + 1}",
        f"https://127.0.0.1:{ws_server.port}",
    ):
        refusal = ws_client.refused(FACILITY, "subscribe-broadcast", origin=origin)
        assert refusal.status == 403, origin
        assert b"cross-origin" in refusal.body
    for origin in (None, f"http://127.0.0.1:{ws_server.port}"):
        ws_client.connect(FACILITY, "subscribe-broadcast", origin=origin).close()


@pytest.mark.gen_test
async def test_ws4redis_allowed_origins_admit_exactly_their_scheme_host_and_port(ws_url, http_port):
    url = ws_url(FACILITY, "subscribe-broadcast")
    origins = ["https://app.example.net", "https://*.example.com", "http://127.0.0.1:9999"]
    with override_settings(ALLOWED_HOSTS=["127.0.0.1", ".example.org"], WS4REDIS_ALLOWED_ORIGINS=origins):
        for origin in ("https://app.example.net", "https://a.b.example.com", "http://127.0.0.1:9999"):
            async with connect(url, origin=origin) as ws:
                assert ws.response.status_code == 101, origin
        for origin in (
            "http://app.example.net",
            "https://app.example.net:8443",
            "https://evil.example.com:8443",
            "http://a.example.com",
            "https://example.net",
            "http://127.0.0.1:9998",
            "null",
        ):
            assert (await refused_with(connect(url, origin=origin))).status_code == 403, origin


@pytest.mark.gen_test
async def test_allowed_hosts_patterns_admit_no_other_origin(ws_url):
    # ALLOWED_HOSTS says which hosts the server answers for, not which pages may connect.
    with override_settings(ALLOWED_HOSTS=["127.0.0.1", ".example.com"]):
        for origin in ("https://evil.example.com:8443", "https://chat.example.com", "http://127.0.0.1:9999"):
            response = await refused_with(connect(ws_url(FACILITY, "subscribe-broadcast"), origin=origin))
            assert response.status_code == 403, origin


@pytest.mark.gen_test
async def test_a_cross_site_handshake_without_origin_is_refused(ws_url):
    headers = {"Sec-Fetch-Site": "cross-site"}
    response = await refused_with(connect(ws_url(FACILITY, "subscribe-broadcast"), headers=headers))
    assert response.status_code == 403


@pytest.mark.gen_test
async def test_behind_a_tls_proxy_the_own_origin_is_https(ws_url, http_port):
    url = ws_url(FACILITY, "subscribe-broadcast")
    proxied = {"X-Forwarded-Proto": "https"}
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        async with connect(url, origin=f"https://127.0.0.1:{http_port}", headers=proxied) as ws:
            assert ws.response.status_code == 101
        response = await refused_with(connect(url, origin=f"http://127.0.0.1:{http_port}", headers=proxied))
        assert response.status_code == 403
    # Without the setting, the header is not trusted.
    response = await refused_with(connect(url, origin=f"https://127.0.0.1:{http_port}", headers=proxied))
    assert response.status_code == 403


@pytest.mark.gen_test
async def test_a_wildcard_in_allowed_hosts_admits_no_foreign_origin(ws_url, http_port):
    url = ws_url(FACILITY, "subscribe-broadcast")
    with override_settings(ALLOWED_HOSTS=["*"]):
        assert (await refused_with(connect(url, origin="http://evil.example"))).status_code == 403
        async with connect(url, origin=f"http://127.0.0.1:{http_port}") as ws:
            assert ws.response.status_code == 101


@pytest.mark.gen_test
async def test_same_host_counts_only_for_a_host_django_serves(ws_url, http_port):
    # A DNS-rebinding page has the server's address as its own host; ALLOWED_HOSTS stops it.
    with override_settings(ALLOWED_HOSTS=["chat.example.org"]):
        response = await refused_with(
            connect(ws_url(FACILITY, "subscribe-broadcast"), origin=f"http://127.0.0.1:{http_port}")
        )
    assert response.status_code == 403


@pytest.mark.gen_test
async def test_process_request_setting_is_read_per_handshake(ws_url, anonymous):
    with override_settings(WS4REDIS_PROCESS_REQUEST="tests.bridge.hooks.require_token"):
        response = await refused_with(connect(ws_url(FACILITY, "subscribe-broadcast&token=guess"), session=anonymous))
        assert (response.status_code, response.body) == (403, b"bad token\n")
        async with connect(ws_url(FACILITY, "subscribe-broadcast&token=secret"), session=anonymous) as ws:
            assert ws.response.status_code == 101
    async with connect(ws_url(FACILITY, "subscribe-broadcast&token=guess")) as ws:
        assert ws.response.status_code == 101


@pytest.mark.gen_test
@pytest.mark.parametrize("bridge_settings", [{"WS4REDIS_SUBSCRIBER": "tests.bridge.hooks.RecordingSubscriber"}])
async def test_the_subscriber_class_comes_from_the_settings(ws_url, prefix, john):
    hooks.RecordingSubscriber.subscribed.clear()
    async with connect(ws_url(FACILITY, "subscribe-user&subscribe-broadcast"), session=john):
        pass
    assert hooks.RecordingSubscriber.subscribed == [
        [f"{prefix}:broadcast:{FACILITY}", f"{prefix}:user:john:{FACILITY}"]
    ]


@pytest.mark.gen_test
async def test_database_sessions_identify_the_socket(ws_url, redis_client, prefix, john):
    async with connect(ws_url(FACILITY, "publish-user&publish-session&publish-group"), session=john) as ws:
        await ws.send("from john's browser")
    for key in (f"user:john:{FACILITY}", f"session:{john}:{FACILITY}", f"group:admins:{FACILITY}"):
        assert redis_client.get(f"{prefix}:{key}") == b"from john's browser", key


@pytest.mark.gen_test(timeout=10)
async def test_a_slow_session_store_does_not_delay_other_sockets(ws_url, anonymous):
    slow_sessions.loading.clear()
    url = ws_url(FACILITY, "subscribe-broadcast")
    with override_settings(SESSION_ENGINE="tests.bridge.slow_sessions"):
        async with connect(url) as fast:  # no cookie, so no session to load
            slow = asyncio.ensure_future(within(connect(url, session=anonymous).__aenter__(), 5000 * MS))
            await wait_until(slow_sessions.loading.is_set)
            await RedisPublisher(facility=FACILITY, broadcast=True).apublish_message("not held up")
            assert await recv(fast) == "not held up"
            # Had the lookup run on the IOLoop, nothing would have moved for DELAY seconds.
            assert time.monotonic() - slow_sessions.loads_started_at[-1] < slow_sessions.DELAY / 2
            slow_ws = await slow
            try:
                assert time.monotonic() - slow_sessions.loads_started_at[-1] >= slow_sessions.DELAY
                assert await recv(slow_ws) == "not held up"  # persisted meanwhile
            finally:
                await slow_ws.close()


@pytest.mark.gen_test
async def test_a_slow_view_does_not_delay_websockets(ws_url, http_client, http_url):
    views.slow_view_started.clear()
    views.slow_view_release.clear()
    async with connect(ws_url(FACILITY, "subscribe-broadcast")) as ws:
        response = http_client.fetch(http_url("/slow/"), raise_error=False)
        await wait_until(views.slow_view_started.is_set)
        await RedisPublisher(facility=FACILITY, broadcast=True).apublish_message("while django works")
        assert await recv(ws, 1000 * MS) == "while django works"
        latency = time.monotonic() - views.slow_view_started_at[-1]
        views.slow_view_release.set()
        # Had the view run on the IOLoop, this test could not have released it: "timed out".
        assert (await within(response)).body == b"released"
    assert latency < 1


@pytest.mark.gen_test
async def test_django_views_are_served_with_their_session(http_client, http_url, john):
    response = await http_client.fetch(http_url("/whoami/"), headers={"Cookie": f"sessionid={john}"})
    assert response.body == b"john"
    response = await http_client.fetch(http_url("/no/such/page/"), raise_error=False)
    assert response.code == 404


@pytest.mark.gen_test
@pytest.mark.parametrize(("bridge_settings", "status"), [({"DEBUG": True}, 200), ({"DEBUG": False}, 404)])
async def test_static_files_are_served_in_debug_only(http_client, http_url, status):
    response = await http_client.fetch(http_url("/static/django_bridge/js/ws4redis.js"), raise_error=False)
    assert response.code == status
    if status == 200:
        assert b"WebSocket" in response.body


@pytest.mark.gen_test
async def test_health_check(http_client, http_url):
    response = await http_client.fetch(http_url("/ws4redis/health"))
    assert json.loads(response.body)["redis"] == "up"


@pytest.mark.gen_test
@pytest.mark.parametrize("bridge_settings", [{"WS4REDIS_HEALTH_URL": "/hello/"}])
async def test_the_health_check_never_shadows_a_view(http_client, http_url):
    response = await http_client.fetch(http_url("/hello/"))
    assert response.body == b"hello from django"


@pytest.mark.gen_test
@pytest.mark.parametrize("bridge_settings", [{"WS4REDIS_HEARTBEAT": "--heartbeat--"}])
async def test_templates_get_the_websocket_uri_and_heartbeat(http_client, http_url, http_port):
    response = await http_client.fetch(http_url("/heartbeat.js"))
    expected = f"var uri = 'ws://127.0.0.1:{http_port}/ws/', heartbeat = \"--heartbeat--\";"
    assert response.body.decode() == expected


def test_a_given_executor_runs_django_and_stays_its_owners(broker):
    with ThreadPoolExecutor(max_workers=2) as executor:
        application = make_app(broker=broker, executor=executor)
        assert application.executor is executor
        application.close()
        assert executor.submit(lambda: "still running").result(timeout=1) == "still running"


@pytest.mark.gen_test
@pytest.mark.parametrize("app_options", [{"ws_only": True}])
async def test_ws_only_serves_websockets_and_no_views(app, ws_url, http_client, http_url, john):
    response = await http_client.fetch(http_url("/hello/"), raise_error=False)
    assert response.code == 404
    async with connect(ws_url(FACILITY, "subscribe-user&publish-user&echo"), session=john) as ws:
        await ws.send("no views here")
        assert await recv(ws) == "no views here"
